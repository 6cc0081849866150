package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"lrmc/digest"
)

// statTimeout bounds the requests of a Stat and of opening the store: they
// move a few hundred bytes, so a server that takes longer is unreachable.
// Transfers of values have no timeout (a value may be gigabytes).
const statTimeout = 30 * time.Second

// statPeek is how much of an object Stat fetches to read the header in one
// request; a longer Meta record costs a second request.
const statPeek = 4 << 10

// S3Remote stores each entry as one object PREFIX/KEY (KEY in hex) in a
// bucket of an S3-compatible object store, holding the blob described at
// Remote. Objects are immutable: Put skips a key whose object exists and
// writes with If-None-Match: * so that of two concurrent writers only one
// creates the object. Where the condition does not hold the last writer
// wins, which is as good: every writer of a key writes a sound entry of the
// same result. It does not hold on servers without conditional writes, nor
// for values over 16 MiB (multipart uploads) on servers that ignore the
// header minio-go sends with CompleteMultipartUpload: SeaweedFS and gofakes3
// apply it to single PUTs only (the tests run against both). After writing, Put reads the object's header back and
// checks it (a HEAD and a ranged GET; no value bytes move).
type S3Remote struct {
	c              *minio.Client
	endpoint       string
	bucket, prefix string
}

// openS3Remote opens s3://BUCKET/PREFIX. The endpoint and credentials come
// from the environment: LRMC_S3_ENDPOINT (host:port; default
// s3.amazonaws.com; an http:// or https:// in front picks the scheme),
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN;
// anonymous access without them), AWS_REGION, and LRMC_S3_INSECURE=1 for
// plain http. The bucket must exist: lrmc does not create buckets.
func openS3Remote(url string) (*S3Remote, error) {
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	if bucket == "" {
		return nil, fmt.Errorf("cache: remote %q: no bucket (want s3://BUCKET/PREFIX)", url)
	}
	endpoint := os.Getenv("LRMC_S3_ENDPOINT")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	secure := os.Getenv("LRMC_S3_INSECURE") != "1"
	if rest, ok := strings.CutPrefix(endpoint, "http://"); ok {
		endpoint, secure = rest, false
	} else if rest, ok := strings.CutPrefix(endpoint, "https://"); ok {
		endpoint, secure = rest, true
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	c, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewEnvAWS(),
		Secure: secure,
		Region: os.Getenv("AWS_REGION"),
	})
	if err != nil {
		return nil, fmt.Errorf("cache: remote %s: endpoint %s (LRMC_S3_ENDPOINT): %w", url, endpoint, err)
	}
	r := &S3Remote{c: c, endpoint: endpoint, bucket: bucket, prefix: strings.Trim(prefix, "/")}
	ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
	defer cancel()
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("cache: remote %s at %s: %w", url, endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("cache: remote %s at %s: bucket %q does not exist", url, endpoint, bucket)
	}
	return r, nil
}

func (r *S3Remote) object(key digest.Digest) string { return path.Join(r.prefix, key.String()) }

func (r *S3Remote) url(key digest.Digest) string {
	return "s3://" + r.bucket + "/" + r.object(key)
}

// fail wraps an S3 error, naming the object and the endpoint; a missing
// object is an ErrNotFound error.
func (r *S3Remote) fail(key digest.Digest, what string, err error) error {
	if resp := minio.ToErrorResponse(err); resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket {
		return notFound(key)
	}
	return fmt.Errorf("cache: remote %s at %s: %s: %w", r.url(key), r.endpoint, what, err)
}

// Stat implements Remote with a HEAD of the object and a ranged read of its
// header: no value bytes are fetched.
func (r *S3Remote) Stat(key digest.Digest) (Meta, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
	defer cancel()
	info, err := r.c.StatObject(ctx, r.bucket, r.object(key), minio.StatObjectOptions{})
	if err != nil {
		return Meta{}, r.fail(key, "stat", err)
	}
	hdr, err := r.readRange(ctx, key, 0, min(info.Size, 8+statPeek))
	if err != nil {
		return Meta{}, err
	}
	if len(hdr) >= 8 {
		// A Meta longer than the peek: fetch the rest of it, if its length
		// is plausible (readRemoteHeader reports an implausible one).
		n := binary.LittleEndian.Uint64(hdr)
		if need, have := 8+int64(n), int64(len(hdr)); n <= maxRemoteMeta && need > have && need <= info.Size {
			more, err := r.readRange(ctx, key, have, need-have)
			if err != nil {
				return Meta{}, err
			}
			hdr = append(hdr, more...)
		}
	}
	return readRemoteHeader(bytes.NewReader(hdr), info.Size, key, r.url(key))
}

// readRange reads n bytes of key's object from offset off.
func (r *S3Remote) readRange(ctx context.Context, key digest.Digest, off, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+n-1); err != nil {
		return nil, r.fail(key, "read header", err)
	}
	obj, err := r.c.GetObject(ctx, r.bucket, r.object(key), opts)
	if err != nil {
		return nil, r.fail(key, "read header", err)
	}
	defer obj.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(obj, b); err != nil {
		return nil, r.fail(key, "read header", err)
	}
	return b, nil
}

// Get implements Remote: one GET, the header checked before the value is
// allocated, the value verified against its BLAKE3.
func (r *S3Remote) Get(key digest.Digest) ([]byte, Meta, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obj, err := r.c.GetObject(ctx, r.bucket, r.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, Meta{}, r.fail(key, "get", err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return nil, Meta{}, r.fail(key, "get", err)
	}
	m, err := readRemoteHeader(obj, info.Size, key, r.url(key))
	if err != nil {
		return nil, Meta{}, err
	}
	v, err := readRemoteValue(obj, m, r.url(key))
	if err != nil {
		return nil, Meta{}, err
	}
	return v, m, nil
}

// Put implements Remote.
func (r *S3Remote) Put(m Meta, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
	_, err := r.c.StatObject(ctx, r.bucket, r.object(m.Key), minio.StatObjectOptions{})
	cancel()
	if err == nil {
		return nil // immutable: the entry is already there
	}
	if err := r.fail(m.Key, "stat", err); !errors.Is(err, ErrNotFound) {
		return err
	}
	return r.write(m, value, true)
}

// Replace implements Remote.
func (r *S3Remote) Replace(m Meta, value []byte) error { return r.write(m, value, false) }

// write uploads m's blob, only if no object exists when ifAbsent is set,
// then checks what the bucket holds under the key.
func (r *S3Remote) write(m Meta, value []byte, ifAbsent bool) error {
	m, hdr, err := sealForRemote(m, value)
	if err != nil {
		return fmt.Errorf("cache: remote %s: put: %w", r.url(m.Key), err)
	}
	blob := io.NewSectionReader(concatReaderAt{hdr, value}, 0, int64(len(hdr)+len(value)))
	// The payload is not signed with SHA-256 (UNSIGNED-PAYLOAD, protected by
	// TLS and minio-go's CRC32C checksum, which the server checks): every
	// read verifies the value's BLAKE3 end to end anyway, a SHA-256 pass
	// over gigabytes of activations would buy nothing more, and the chunked
	// signed encoding it needs for multipart parts over plain http is one
	// that gofakes3, the tests' server, stores undecoded (the check after
	// the write caught that).
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	_, err = r.c.PutObject(context.Background(), r.bucket, r.object(m.Key), blob, blob.Size(), opts)
	if err != nil && minio.ToErrorResponse(err).Code != minio.PreconditionFailed {
		return fmt.Errorf("cache: remote %s at %s: put %s: %w", r.url(m.Key), r.endpoint, m.describe(), err)
	}
	// Verify: the object there now, this writer's or a concurrent one's
	// (of this key, so of the same result), must be a sound entry.
	if _, err := r.Stat(m.Key); err != nil {
		return fmt.Errorf("cache: remote %s: verify after put: %w", r.url(m.Key), err)
	}
	return nil
}

// concatReaderAt reads its parts as one byte sequence, so an upload can
// seek and re-read the blob (for its checksums and retries) without the
// header and the value being copied into one buffer.
type concatReaderAt [][]byte

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for _, part := range c {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		k := copy(p[n:], part[off:])
		n, off = n+k, 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

// Sweep implements RemoteSweeper: it aborts the multipart uploads of this
// store's objects (PREFIX/KEY, KEY a node key in hex: nothing else in the
// bucket is touched) started before cutoff. A writer killed mid-upload
// leaves one, and so does every upload whose completion fails, a lost
// If-None-Match race included: minio-go does not abort them. Their parts
// stay stored (and, on AWS, billed) until aborted; a bucket lifecycle rule
// with AbortIncompleteMultipartUpload does the same on the server's side.
func (r *S3Remote) Sweep(cutoff time.Time, dryRun bool) ([]Leftover, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	where := fmt.Sprintf("cache: remote s3://%s/%s at %s: sweep", r.bucket, r.prefix, r.endpoint)
	listPrefix := r.prefix
	if listPrefix != "" {
		listPrefix += "/"
	}
	core := minio.Core{Client: r.c}
	var out []Leftover
	for u := range r.c.ListIncompleteUploads(ctx, r.bucket, listPrefix, true) {
		if u.Err != nil {
			return out, fmt.Errorf("%s: list incomplete uploads: %w", where, u.Err)
		}
		dir, name := path.Split(u.Key)
		if _, err := digest.Parse(name); err != nil || dir != listPrefix || !u.Initiated.Before(cutoff) {
			continue
		}
		if !dryRun {
			err := core.AbortMultipartUpload(ctx, r.bucket, u.Key, u.UploadID)
			if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchUpload {
				return out, fmt.Errorf("%s: abort upload %s of %s: %w", where, u.UploadID, u.Key, err)
			}
		}
		out = append(out, Leftover{
			URL:  "s3://" + r.bucket + "/" + u.Key + " (upload " + u.UploadID + ")",
			What: "incomplete multipart upload", Size: -1, Modified: u.Initiated,
		})
	}
	return out, nil
}

package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"lrmc/digest"
)

// s3Server starts gofakes3, an S3-protocol server written in Go for tests,
// in this process on a loopback port, with one bucket, and points the
// environment of OpenRemote at it. It speaks the S3 REST protocol with
// SigV4 authentication over HTTP, so the S3Remote is exercised through
// minio-go exactly as against another server; it is not AWS, whose
// behaviour under load and consistency it does not model.
func s3Server(t *testing.T, bucket string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(ts.Close)
	t.Setenv("LRMC_S3_ENDPOINT", strings.TrimPrefix(ts.URL, "http://"))
	t.Setenv("LRMC_S3_INSECURE", "1")
	t.Setenv("AWS_ACCESS_KEY_ID", "lrmc-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "lrmc-test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
}

func openS3(t *testing.T, url string) *S3Remote {
	t.Helper()
	r, err := OpenRemote(url)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*S3Remote)
}

func TestS3RemoteRoundTripTamperConcurrent(t *testing.T) {
	s3Server(t, "lrmc")
	r := openS3(t, "s3://lrmc/team/cache/")
	key := digest.Of([]byte("node"))
	val := bytes.Repeat([]byte("activation "), 20000)
	if _, err := r.Stat(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat before Put: %v", err)
	}
	if _, _, err := r.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v", err)
	}

	// Eight concurrent writers of one key, with different metadata: one
	// object results, a sound one.
	writeConcurrently(t, r.Put, Meta{Key: key, Op: "capture"}, val)
	var objects []string
	for o := range r.c.ListObjects(context.Background(), "lrmc", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objects = append(objects, o.Key)
	}
	if len(objects) != 1 || objects[0] != "team/cache/"+key.String() {
		t.Fatalf("bucket holds %v, want the one object team/cache/%s", objects, key)
	}
	got, m, err := r.Get(key)
	if err != nil || !bytes.Equal(got, val) || m.Sum != digest.Of(val) || m.Op != "capture" || len(m.Runs) != 1 {
		t.Fatalf("Get: %d bytes, %+v, %v", len(got), m, err)
	}
	sm, err := r.Stat(key)
	if err != nil || sm.Sum != m.Sum || sm.Size != m.Size || sm.Runs[0] != m.Runs[0] || !sm.Created.Equal(m.Created) {
		t.Fatalf("Stat: %+v %v, want %+v", sm, err, m)
	}

	// Put leaves the existing object alone.
	if err := r.Put(Meta{Key: key, Op: "other"}, []byte("other value")); err != nil {
		t.Fatal(err)
	}
	if _, m2, _ := r.Get(key); m2.Op != "capture" {
		t.Fatalf("Put replaced an existing object: op %q", m2.Op)
	}

	// A writer that lost the race to the existence check still leaves the
	// object alone: its conditional PUT (If-None-Match: *) is refused.
	if err := r.write(Meta{Key: key, Op: "late"}, []byte("late value"), true); err != nil {
		t.Fatal(err)
	}
	if _, m2, _ := r.Get(key); m2.Op != "capture" {
		t.Fatalf("a conditional write replaced an existing object: op %q", m2.Op)
	}

	// Tamper through the S3 API: one byte of the value flipped.
	obj, err := r.c.GetObject(context.Background(), "lrmc", r.object(key), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	blob[len(blob)-1000] ^= 1
	if _, err := r.c.PutObject(context.Background(), "lrmc", r.object(key), bytes.NewReader(blob), int64(len(blob)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(key); err != nil {
		t.Fatalf("Stat of a tampered value (header intact): %v", err)
	}
	_, _, err = r.Get(key)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "s3://lrmc/team/cache/"+key.String()) || !strings.Contains(err.Error(), "content hash") {
		t.Fatalf("Get of a tampered object: %v", err)
	}
	// A truncated object is refused by Stat already.
	short := blob[:len(blob)-10]
	if _, err := r.c.PutObject(context.Background(), "lrmc", r.object(key), bytes.NewReader(short), int64(len(short)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "its metadata says") {
		t.Fatalf("Stat of a truncated object: %v", err)
	}
	// Replace writes over it.
	if err := r.Replace(Meta{Key: key, Op: "capture"}, val); err != nil {
		t.Fatal(err)
	}
	if got, _, err := r.Get(key); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("Get after Replace: %d bytes, %v", len(got), err)
	}

	// A Meta record longer than Stat's first read (many runs) takes a
	// second ranged read; a hostile length field none.
	k3 := digest.Of([]byte("many runs"))
	runs := make([]string, 600)
	for i := range runs {
		runs[i] = "run-" + strings.Repeat("x", 10) + strconv.Itoa(i)
	}
	if err := r.Put(Meta{Key: k3, Op: "op", Runs: runs}, val[:100]); err != nil {
		t.Fatal(err)
	}
	if m, err := r.Stat(k3); err != nil || len(m.Runs) != 600 || m.Runs[599] != runs[599] {
		t.Fatalf("Stat of a long Meta: %d runs, %v", len(m.Runs), err)
	}
	hostile := binary.LittleEndian.AppendUint64(nil, 1<<62)
	hostile = append(hostile, make([]byte, 100)...)
	if _, err := r.c.PutObject(context.Background(), "lrmc", r.object(k3), bytes.NewReader(hostile), int64(len(hostile)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(k3); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Fatalf("Stat of a hostile length: %v", err)
	}
	if _, _, err := r.Get(k3); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Fatalf("Get of a hostile length: %v", err)
	}

	if _, err := OpenRemote("s3://nosuchbucket/x"); err == nil || !strings.Contains(err.Error(), `bucket "nosuchbucket" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := OpenRemote("s3:///x"); err == nil || !strings.Contains(err.Error(), "no bucket") {
		t.Fatalf("no bucket: %v", err)
	}
}

// TestStoreThroughS3 shares results between two local caches through S3:
// Stat sees the remote-only entry, Get reads it through, and a tampered
// object is a miss whose recomputed value replaces it.
func TestStoreThroughS3(t *testing.T) {
	s3Server(t, "shared")
	r := openS3(t, "s3://shared")
	a, b := openStore(t, r), openStore(t, r)
	key := digest.Of([]byte("k"))
	val := []byte("a result computed on machine a")
	if err := a.Put(key, "score", "scores", val); err != nil {
		t.Fatal(err)
	}
	am, _, _ := a.Stat(key)
	bm, ok, err := b.Stat(key)
	if err != nil || !ok || bm.Sum != am.Sum || bm.Op != "score" || !bm.Created.Equal(am.Created) {
		t.Fatalf("b.Stat: ok=%v %+v %v, want %+v", ok, bm, err, am)
	}
	v, _, err := b.Get(key)
	if err != nil || !bytes.Equal(v, val) {
		t.Fatalf("b.Get: %q %v", v, err)
	}
	if _, ok, _ := b.statLocal(key); !ok {
		t.Fatal("b did not keep the entry it read through")
	}

	k2 := digest.Of([]byte("k2"))
	if err := a.Put(k2, "score", "more", val); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{}, val...)
	bad[0] ^= 1
	hdr, _ := encodeRemoteHeader(Meta{Key: k2, Op: "score", Size: int64(len(val)), Sum: digest.Of(val)})
	blob := append(hdr, bad...)
	if _, err := r.c.PutObject(context.Background(), "shared", r.object(k2), bytes.NewReader(blob), int64(len(blob)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, r)
	if v, _, err := c.Get(k2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a tampered object: %q %v, want a miss", v, err)
	}
	if err := c.Put(k2, "score", "more", val); err != nil {
		t.Fatal(err)
	}
	if v, _, err := r.Get(k2); err != nil || !bytes.Equal(v, val) {
		t.Fatalf("the recomputed value did not replace the tampered object: %q %v", v, err)
	}
}

// TestS3RemoteMultipart stores a value above minio-go's 16 MiB part size,
// which goes up as a multipart upload, and reads it back verified.
func TestS3RemoteMultipart(t *testing.T) {
	s3Server(t, "big")
	r := openS3(t, "s3://big/p")
	key := digest.Of([]byte("big"))
	val := make([]byte, 17<<20)
	for i := range val {
		val[i] = byte(i*7 + i>>12)
	}
	if err := r.Put(Meta{Key: key, Op: "capture"}, val); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(Meta{Key: key, Op: "other"}, val); err != nil {
		t.Fatal(err)
	}
	got, m, err := r.Get(key)
	if err != nil || !bytes.Equal(got, val) || m.Op != "capture" {
		t.Fatalf("Get: %d bytes equal=%v op %q, %v", len(got), bytes.Equal(got, val), m.Op, err)
	}
	// A writer past the existence check: gofakes3 (and minio-go's multipart
	// path) does not apply If-None-Match here, so the last writer wins,
	// with an entry just as sound.
	if err := r.write(Meta{Key: key, Op: "late"}, val, true); err != nil {
		t.Fatal(err)
	}
	if got, _, err := r.Get(key); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("Get after a racing write: %d bytes, %v", len(got), err)
	}
}

package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"lrmc/digest"
)

// s3Target is one S3-compatible server the S3 tests run against, with the
// environment of OpenRemote pointed at it.
type s3Target struct {
	bucket string
	// prefix is this test's own: tests and runs sharing a real server's
	// bucket never see each other's objects.
	prefix string
}

// url is the remote URL of the target's prefix.
func (s s3Target) url() string { return "s3://" + s.bucket + "/" + s.prefix }

// forEachS3 runs test twice, as the subtests "gofakes3" (always) and "real"
// (when LRMC_S3_TEST_ENDPOINT names a real S3-compatible server, such as the
// SeaweedFS that .ci/s3-up.sh starts for CI; skipped otherwise), so that
// every S3 behaviour is checked by one body against both servers.
func forEachS3(t *testing.T, test func(t *testing.T, s s3Target)) {
	t.Run("gofakes3", func(t *testing.T) { test(t, fakeS3(t)) })
	t.Run("real", func(t *testing.T) { test(t, realS3(t)) })
}

// fakeS3 starts gofakes3, an S3-protocol server written in Go for tests,
// in this process on a loopback port, with one bucket. It speaks the S3
// REST protocol with SigV4 authentication over HTTP, so the S3Remote is
// exercised through minio-go exactly as against another server; it is not
// AWS, whose behaviour under load and consistency it does not model.
func fakeS3(t *testing.T) s3Target {
	t.Helper()
	const bucket = "lrmc"
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(ts.Close)
	t.Setenv("LRMC_S3_ENDPOINT", ts.URL)
	t.Setenv("LRMC_S3_INSECURE", "1")
	t.Setenv("AWS_ACCESS_KEY_ID", "lrmc-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "lrmc-test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	return s3Target{bucket: bucket, prefix: testPrefix(t)}
}

// realS3 is the real S3-compatible server named by LRMC_S3_TEST_ENDPOINT
// (http://HOST:PORT or https://HOST:PORT), LRMC_S3_TEST_BUCKET (an existing
// bucket), LRMC_S3_TEST_ACCESS_KEY and LRMC_S3_TEST_SECRET_KEY. The test is
// skipped when no endpoint is set, and fails when the one set does not
// answer or lacks the bucket: whoever set it (CI's .ci/s3-up.sh) meant the
// tests to run there. The test's objects are removed afterwards.
func realS3(t *testing.T) s3Target {
	t.Helper()
	endpoint := os.Getenv("LRMC_S3_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip("LRMC_S3_TEST_ENDPOINT is not set: no real S3-compatible server to test against " +
			"(.ci/s3-up.sh builds and starts SeaweedFS and sets it); tested against gofakes3 only")
	}
	bucket := os.Getenv("LRMC_S3_TEST_BUCKET")
	if bucket == "" {
		t.Fatal("LRMC_S3_TEST_ENDPOINT is set but LRMC_S3_TEST_BUCKET is not")
	}
	t.Setenv("LRMC_S3_ENDPOINT", endpoint)
	t.Setenv("LRMC_S3_INSECURE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", os.Getenv("LRMC_S3_TEST_ACCESS_KEY"))
	t.Setenv("AWS_SECRET_ACCESS_KEY", os.Getenv("LRMC_S3_TEST_SECRET_KEY"))
	t.Setenv("AWS_SESSION_TOKEN", "")
	if os.Getenv("AWS_REGION") == "" {
		t.Setenv("AWS_REGION", "us-east-1")
	}
	s := s3Target{bucket: bucket, prefix: testPrefix(t)}
	// One request with a deadline before the test proper: minio-go retries a
	// refused connection for about 30 s, and the failure should say what
	// was asked of whom.
	r, err := OpenRemote(s.url())
	if err != nil {
		t.Fatalf("the real S3 server named by LRMC_S3_TEST_ENDPOINT=%s (bucket %s) does not answer: %v", endpoint, bucket, err)
	}
	c := r.(*S3Remote).c
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
		defer cancel()
		objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			t.Logf("removing %s: %v", e.ObjectName, e.Err)
		}
	})
	return s
}

// testPrefix is a prefix unique to this test and this run.
func testPrefix(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("lrmc-test/%s-%d/", name, time.Now().UnixNano())
}

// listObjects lists every object under prefix in bucket.
func listObjects(t *testing.T, c *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var objects []string
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objects = append(objects, o.Key)
	}
	return objects
}

// putRaw writes blob as key's object directly through the S3 API, as a
// hostile or broken writer would.
func putRaw(t *testing.T, r *S3Remote, key digest.Digest, blob []byte) {
	t.Helper()
	if _, err := r.c.PutObject(context.Background(), r.bucket, r.object(key), bytes.NewReader(blob), int64(len(blob)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
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
	forEachS3(t, testS3RemoteRoundTripTamperConcurrent)
}

func testS3RemoteRoundTripTamperConcurrent(t *testing.T, s s3Target) {
	r := openS3(t, s.url())
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
	objects := listObjects(t, r.c, s.bucket, s.prefix)
	if len(objects) != 1 || objects[0] != s.prefix+key.String() {
		t.Fatalf("bucket holds %v under %s, want the one object %s%s", objects, s.prefix, s.prefix, key)
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
	obj, err := r.c.GetObject(context.Background(), s.bucket, r.object(key), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	blob[len(blob)-1000] ^= 1
	putRaw(t, r, key, blob)
	if _, err := r.Stat(key); err != nil {
		t.Fatalf("Stat of a tampered value (header intact): %v", err)
	}
	_, _, err = r.Get(key)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "s3://"+s.bucket+"/"+s.prefix+key.String()) || !strings.Contains(err.Error(), "content hash") {
		t.Fatalf("Get of a tampered object: %v", err)
	}
	// A truncated object is refused by Stat already.
	putRaw(t, r, key, blob[:len(blob)-10])
	if _, err := r.Stat(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "its metadata says") {
		t.Fatalf("Stat of a truncated object: %v", err)
	}
	if _, _, err := r.Get(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "its metadata says") {
		t.Fatalf("Get of a truncated object: %v", err)
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
	putRaw(t, r, k3, hostile)
	if _, err := r.Stat(k3); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Fatalf("Stat of a hostile length: %v", err)
	}
	if _, _, err := r.Get(k3); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Fatalf("Get of a hostile length: %v", err)
	}

	missing := fmt.Sprintf("lrmc-no-such-bucket-%d", time.Now().UnixNano())
	if _, err := OpenRemote("s3://" + missing + "/x"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bucket %q does not exist", missing)) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := OpenRemote("s3:///x"); err == nil || !strings.Contains(err.Error(), "no bucket") {
		t.Fatalf("no bucket: %v", err)
	}
}

// TestStoreThroughS3 shares results between two local caches through S3:
// Stat sees the remote-only entry, Get reads it through, and a tampered
// object is a miss whose recomputed value replaces it.
func TestStoreThroughS3(t *testing.T) { forEachS3(t, testStoreThroughS3) }

func testStoreThroughS3(t *testing.T, s s3Target) {
	r := openS3(t, s.url())
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
	putRaw(t, r, k2, append(hdr, bad...))
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
func TestS3RemoteMultipart(t *testing.T) { forEachS3(t, testS3RemoteMultipart) }

func testS3RemoteMultipart(t *testing.T, s s3Target) {
	r := openS3(t, s.url())
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
	// A writer past the existence check: minio-go sends If-None-Match with
	// CompleteMultipartUpload; a server that applies it there refuses the
	// late entry, one that does not (gofakes3) lets the last writer win,
	// with an entry just as sound. Either way the object is a sound entry.
	if err := r.write(Meta{Key: key, Op: "late"}, val, true); err != nil {
		t.Fatal(err)
	}
	got, m, err = r.Get(key)
	if err != nil || !bytes.Equal(got, val) || m.Op != "capture" && m.Op != "late" {
		t.Fatalf("Get after a racing write: %d bytes, op %q, %v", len(got), m.Op, err)
	}
	var pending []string
	for u := range r.c.ListIncompleteUploads(context.Background(), s.bucket, s.prefix, true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		pending = append(pending, u.Key)
	}
	t.Logf("after a racing multipart write the entry is the %s writer's; incomplete uploads left: %v", m.Op, pending)
}

// TestS3RemoteSweep leaves an incomplete multipart upload of an entry, as a
// writer killed mid-upload does, and checks that Sweep aborts it once it is
// older than the cut-off (a dry run only lists it), and leaves alone a
// finished entry and an upload of an object that is not an entry.
func TestS3RemoteSweep(t *testing.T) { forEachS3(t, testS3RemoteSweep) }

func testS3RemoteSweep(t *testing.T, s s3Target) {
	r := openS3(t, s.url())
	ctx := context.Background()
	core := minio.Core{Client: r.c}
	entry := digest.Of([]byte("finished"))
	if err := r.Put(Meta{Key: entry, Op: "op"}, []byte("a finished entry")); err != nil {
		t.Fatal(err)
	}
	crashed := r.object(digest.Of([]byte("crashed writer")))
	id, err := core.NewMultipartUpload(ctx, s.bucket, crashed, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part := bytes.Repeat([]byte("p"), 5<<20)
	if _, err := core.PutObjectPart(ctx, s.bucket, crashed, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := s.prefix + "notes.txt"
	foreignID, err := core.NewMultipartUpload(ctx, s.bucket, foreign, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.AbortMultipartUpload(context.Background(), s.bucket, foreign, foreignID) })
	uploads := func() map[string]string {
		t.Helper()
		m := map[string]string{}
		for u := range r.c.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			m[u.UploadID] = u.Key
		}
		return m
	}
	if got := uploads(); got[id] != crashed || got[foreignID] != foreign {
		t.Fatalf("incomplete uploads %v, want %s of %s and %s of %s", got, id, crashed, foreignID, foreign)
	}

	if left, err := r.Sweep(time.Now().Add(-time.Hour), false); err != nil || len(left) != 0 {
		t.Fatalf("a sweep of uploads older than an hour: %+v %v, want nothing", left, err)
	}
	want := "s3://" + s.bucket + "/" + crashed + " (upload " + id + ")"
	later := time.Now().Add(time.Minute) // every upload so far is older
	left, err := r.Sweep(later, true)
	if err != nil || len(left) != 1 || left[0].URL != want || left[0].What != "incomplete multipart upload" {
		t.Fatalf("dry run: %+v %v, want %s alone", left, err, want)
	}
	if got := uploads(); got[id] != crashed {
		t.Fatalf("the dry run aborted the upload: %v", got)
	}
	left, err = r.Sweep(later, false)
	if err != nil || len(left) != 1 || left[0].URL != want {
		t.Fatalf("sweep: %+v %v, want %s alone", left, err, want)
	}
	if got := uploads(); len(got) != 1 || got[foreignID] != foreign {
		t.Fatalf("incomplete uploads after the sweep: %v, want only %s of %s", got, foreignID, foreign)
	}
	if _, _, err := r.Get(entry); err != nil {
		t.Fatalf("the entry after the sweep: %v", err)
	}
}

package cache

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"lrmc/digest"
)

func TestFileRemoteRoundTripCorruptConcurrent(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRemote("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	key := digest.Of([]byte("node"))
	val := []byte("hello remote value")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Put(Meta{Key: key, Op: "x"}, val) }()
	}
	wg.Wait()
	got, m, err := r.Get(key)
	if err != nil || string(got) != string(val) || m.Sum != digest.Of(val) {
		t.Fatalf("get: %q %v", got, err)
	}
	p := r.(*FileRemote).path(key)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, _, err := r.Get(key); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt entry: got %v", err)
	}
	if _, _, err := r.Get(digest.Of([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := OpenRemote("file://" + dir + "/nope"); err == nil || !strings.Contains(err.Error(), dir+"/nope") {
		t.Fatalf("missing dir error: %v", err)
	}
}

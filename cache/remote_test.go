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

func TestTwoLocalCachesShareRemote(t *testing.T) {
	r, err := OpenRemote("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.SetRemote(r)
	b.SetRemote(r)
	key := digest.Of([]byte("k"))
	if err := a.Put(key, "op", "n", []byte("shared")); err != nil {
		t.Fatal(err)
	}
	v, m, err := b.Get(key)
	if err != nil || string(v) != "shared" || m.Op != "op" {
		t.Fatalf("b.Get: %q %v", v, err)
	}
	if _, ok, _ := b.Stat(key); !ok {
		t.Fatal("remote hit was not copied into b")
	}
}

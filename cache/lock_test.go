package cache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lrmc/digest"
)

func TestSecondOpenInSameProcessIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	k, v := key("held"), payload(9, 5<<20)
	if err := s.Put(k, "op", "held", v); err != nil {
		t.Fatal(err)
	}

	_, err := Open(dir, Options{})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want a *LockedError", err)
	}
	if le.Holder.PID != os.Getpid() || le.Holder.Command != strings.Join(os.Args, " ") ||
		time.Since(le.Holder.Since) > time.Minute {
		t.Errorf("holder = %+v, want this process (pid %d, %q) since just now", le.Holder, os.Getpid(), strings.Join(os.Args, " "))
	}
	want := fmt.Sprintf("cache %s is in use by pid %d (%s) since %s; pass --wait to wait for it",
		dir, os.Getpid(), strings.Join(os.Args, " "), le.Holder.Since.Format(time.RFC3339))
	if err.Error() != want {
		t.Errorf("error text\n%s\nwant\n%s", err, want)
	}

	// A bounded wait gives up with its own message.
	start := time.Now()
	_, err = Open(dir, Options{Wait: true, WaitTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.HasPrefix(err.Error(), fmt.Sprintf("cache %s is still in use by pid %d (", dir, os.Getpid())) ||
		!strings.Contains(err.Error(), " after waiting ") {
		t.Errorf("timed-out wait error = %v", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the 300ms timeout", waited)
	}

	// The refused Opens disturbed nothing.
	if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, v) {
		t.Errorf("holder's Get after refused Opens: %d bytes, %v", len(got), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if holder, _ := os.ReadFile(dir + "/" + lockName); len(holder) != 0 {
		t.Errorf("lock file after Close holds %q, want it empty", holder)
	}
	s2 := openTest(t, dir, Options{})
	if got, _, err := s2.Get(k); err != nil || !bytes.Equal(got, v) {
		t.Errorf("Get after reopening: %d bytes, %v", len(got), err)
	}
}

const (
	holdEnv = "LRMC_CACHE_TEST_HOLD"
	putEnv  = "LRMC_CACHE_TEST_PUT"
)

// crashValue is what the helper stores before being killed.
func crashValue() (digest.Digest, []byte) { return key("crash"), payload(13, 10<<20) }

// TestHelperHoldLock is not a test: run as a child process by the tests
// below, it opens the cache named in $LRMC_CACHE_TEST_HOLD, stores crashValue
// if $LRMC_CACHE_TEST_PUT is set, says "ready" and holds the cache until its
// stdin closes.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if os.Getenv(putEnv) != "" {
		k, v := crashValue()
		if err := s.Put(k, "op", "crash", v); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	if os.Getenv(putEnv) == "loop" {
		// Store until killed, reporting each committed entry. One value
		// under many keys keeps the time in Put, where the kill should land.
		v := payload(14, 6<<20)
		for i := 0; ; i++ {
			if err := s.Put(key(fmt.Sprint("loop ", i)), "op", fmt.Sprint(i), v); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			fmt.Println("put", i)
		}
	}
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// holdInChild starts a process holding dir; closing stdin releases it.
// Extra environment settings go to the child.
func holdInChild(t *testing.T, dir string, env ...string) (*exec.Cmd, io.WriteCloser) {
	cmd, stdin, _ := startChild(t, dir, env...)
	return cmd, stdin
}

// startChild starts the helper and returns it once it is ready, with its
// stdin and the rest of its stdout.
func startChild(t *testing.T, dir string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(append(os.Environ(), holdEnv+"="+dir), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	return cmd, stdin, out
}

func TestOtherProcessHoldsLock(t *testing.T) {
	dir := t.TempDir()
	cmd, release := holdInChild(t, dir)

	_, err := Open(dir, Options{})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open while another process holds it: %v", err)
	}
	want := fmt.Sprintf("cache %s is in use by pid %d (%s -test.run=^TestHelperHoldLock$) since %s; pass --wait to wait for it",
		dir, cmd.Process.Pid, os.Args[0], le.Holder.Since.Format(time.RFC3339))
	if err.Error() != want {
		t.Errorf("error text\n%s\nwant\n%s", err, want)
	}

	// A waiting Open gets the cache once the holder lets go.
	opened := make(chan error, 1)
	go func() {
		s, err := Open(dir, Options{Wait: true, WaitTimeout: 20 * time.Second})
		if err == nil {
			err = s.Close()
		}
		opened <- err
	}()
	time.Sleep(100 * time.Millisecond)
	release.Close()
	if err := <-opened; err != nil {
		t.Errorf("waiting Open: %v", err)
	}
}

func TestKilledHolderFreesLockAndKeepsItsResults(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holdInChild(t, dir, putEnv+"=1")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The kernel dropped the flock with the process (its holder record
	// remains, but the lock is free), and what it had stored survives:
	// Badger's write-ahead log and value log are in the page cache.
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	defer s.Close()
	k, v := crashValue()
	if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, v) {
		t.Errorf("value stored by the killed process: %d bytes, %v", len(got), err)
	}
}

func TestKillDuringPutsLeavesOnlyGarbage(t *testing.T) {
	dir := t.TempDir()
	cmd, _, out := startChild(t, dir, putEnv+"=loop")
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper: %q, %v", line, err)
		}
		if line == "put 2\n" {
			break
		}
	}
	// Killed somewhere in entry 3's (or 4's) writes.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s := openTest(t, dir, Options{})
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 3 {
		t.Errorf("%d entries survived, want at least the 3 reported as stored", len(list))
	}
	for _, m := range list {
		if _, _, err := s.Get(m.Key); err != nil {
			t.Errorf("surviving entry %s: %v", m.Name, err)
		}
	}
	if orphans, err := s.orphanChunks(list); err == nil {
		t.Logf("%d entries survived; %d orphan chunk ranges before Verify", len(list), len(orphans))
	}
	bad, err := s.Verify()
	if err != nil || len(bad) != 0 {
		t.Errorf("Verify after the kill = %v, %v; want nothing corrupt", bad, err)
	}
	metas, _ := s.List()
	if orphans, err := s.orphanChunks(metas); err != nil || len(orphans) != 0 {
		t.Errorf("orphan chunks after Verify: %d, %v", len(orphans), err)
	}
	// The values are files: exactly the surviving entries' files are left
	// (Open removed the killed write's temporary file, Verify any file
	// renamed into place whose Meta the kill prevented).
	want := []string{blobTmpDir}
	for _, m := range metas {
		want = append(want, m.Key.String())
	}
	slices.Sort(want)
	if got := blobFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("value files after the kill and Verify: %v, want %v", got, want)
	}
	if tmp, _ := os.ReadDir(filepath.Join(blobsDir(dir), blobTmpDir)); len(tmp) != 0 {
		t.Errorf("temporary files left by the kill: %d", len(tmp))
	}
}

package cache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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

const holdEnv = "LRMC_CACHE_TEST_HOLD"

// TestHelperHoldLock is not a test: run as a child process by the tests
// below, it opens the cache named in $LRMC_CACHE_TEST_HOLD, says "ready" and
// holds the cache until its stdin closes.
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
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// holdInChild starts a process holding dir; closing stdin releases it.
func holdInChild(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
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
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	return cmd, stdin
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

func TestLockOfKilledProcessIsFree(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holdInChild(t, dir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The kernel dropped the flock with the process; its record remains
	// but the lock is free.
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	s.Close()
}

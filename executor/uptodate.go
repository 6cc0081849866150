package executor

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"lrmc/digest"
	"lrmc/planner"
)

// Unchanged outputs.
//
// A warm apply produces the same bytes as the apply before it, and
// rewriting them (staging, fsync, swap) cost a fully cached rerun most of
// its time when the outputs are large exports (a 20M-parameter model's HF
// and GGUF files: 0.15 s of 0.8 s). A unit whose files on disk already are
// byte for byte what it would write, and nothing else, is therefore left
// as it is. The check reads the existing files and compares every byte
// with the verified result (never a size or time stamp), so what the
// output directory holds afterwards is exactly what a rewrite would give.

// current reports whether the unit's files under out are exactly those it
// would write. Any doubt (an error, a missing or extra file, a link, a
// mode other than a fresh output's) answers false, and the unit is
// rewritten.
func (u *unit) current(out string, r *Result) bool {
	root := filepath.Join(out, u.name)
	want := map[string]bool{} // regular files the unit would write, relative to root
	for _, o := range u.outputs {
		rel := "."
		if u.dir {
			_, rest, _ := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
			rel = filepath.FromSlash(rest)
			if rest == "" {
				rel = "."
			}
		}
		path := filepath.Join(root, rel)
		if _, ok := r.onDisk[o.Node]; ok && o.Node != nil {
			// Checked against the entry's digest before the run
			// (outputsOnDisk); only the listing is checked here.
			if !o.Dir {
				want[rel] = true
				continue
			}
			ents, err := os.ReadDir(path)
			if err != nil {
				return false
			}
			for _, e := range ents {
				want[filepath.Join(rel, e.Name())] = true
			}
			continue
		}
		if !o.Dir {
			if !sameFile(path, func(w io.Writer) error { _, err := fillOutput(w, o, r); return err }) {
				return false
			}
			want[rel] = true
			continue
		}
		b, err := nodeBytes(o, r)
		if err != nil {
			return false
		}
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil || hdr.Typeflag != tar.TypeReg || strings.ContainsAny(hdr.Name, `/\`) {
				return false
			}
			if !sameFile(filepath.Join(path, hdr.Name), func(w io.Writer) error { _, err := io.Copy(w, tr); return err }) {
				return false
			}
			want[filepath.Join(rel, hdr.Name)] = true
		}
	}
	if !u.dir {
		return true
	}
	// Nothing else in the run directory (a rewrite would drop it): only
	// the wanted files and the directories holding them.
	dirs := map[string]bool{".": true}
	for rel := range want {
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && dirs[rel] {
			return nil
		}
		if !d.Type().IsRegular() || !want[rel] {
			return errExtra
		}
		found++
		return nil
	})
	return err == nil && found == len(want)
}

var errExtra = errors.New("not an output")

// sameFile reports whether path is a regular file with a fresh output's
// mode holding exactly the bytes fill writes.
func sameFile(path string, fill func(io.Writer) error) bool {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	c := &comparer{f: f}
	if err := fill(c); err != nil || c.differ {
		return false
	}
	// The file must end where the content does.
	n, _ := f.Read(make([]byte, 1))
	return n == 0
}

// comparer is a writer that compares what is written with a file's next
// bytes.
type comparer struct {
	f      *os.File
	buf    []byte
	differ bool
}

func (c *comparer) Write(p []byte) (int, error) {
	if c.differ {
		return len(p), nil
	}
	for rest := p; len(rest) > 0; {
		// Sized to what is compared: most outputs are small, and a
		// fresh buffer per file is paid in page faults.
		n := min(len(rest), 256<<10)
		if cap(c.buf) < n {
			c.buf = make([]byte, n)
		}
		got := c.buf[:n]
		if _, err := io.ReadFull(c.f, got); err != nil || !bytes.Equal(got, rest[:n]) {
			c.differ = true
			return len(p), nil
		}
		rest = rest[n:]
	}
	return len(p), nil
}

// outputSize is the bytes of an output left in place: a file's size, or
// the total of a directory's files, as staging would have counted them.
func outputSize(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// outputsOnDisk finds the nodes whose output already holds their cached
// result, so that their (often large) values need not be read at all: a
// node nothing else uses, written to one output, whose entry's recorded
// BLAKE3 equals that of the file (or, for a bundle, of the directory packed
// again, which PackDir does deterministically). The entry is not read, but
// the output is checked against the digest the entry was verified by: what
// the directory holds is exactly the entry's value. (Its LastUsed is not
// refreshed; the current apply's entries are never evicted by its budget.)
func (x *execution) outputsOnDisk() map[*planner.Node]digest.Digest {
	on := map[*planner.Node]digest.Digest{}
	uses := map[*planner.Node]int{}
	for _, o := range x.g.Outputs {
		if o.Node != nil {
			uses[o.Node]++
		}
	}
	for _, o := range x.g.Outputs {
		n := o.Node
		if n == nil || n.IsSource() || planner.IsEphemeral(n.Op) || x.pending[n] > 0 || uses[n] > 1 || x.g.Results == n {
			continue
		}
		m, ok, err := x.e.store.Stat(n.Key)
		if err != nil || !ok {
			continue
		}
		path := filepath.Join(x.g.OutDir, o.Path)
		var sum digest.Digest
		if o.Dir {
			var size int64
			if sum, size, err = packCurrent(path); err != nil || size != m.Size {
				continue
			}
		} else {
			st, err := os.Lstat(path)
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 || st.Size() != m.Size {
				continue
			}
			if sum, err = x.fileDigest(path); err != nil {
				continue
			}
		}
		if sum == m.Sum {
			on[n] = sum
		}
	}
	return on
}

// packCurrent returns the digest and size of the bundle PackDir would
// make of a directory of outputs, if it holds only regular files of a
// fresh output's mode.
func packCurrent(dir string) (digest.Digest, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return digest.Digest{}, 0, err
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o644 {
			return digest.Digest{}, 0, errExtra
		}
	}
	h := digest.New()
	c := &counter{w: h}
	if err := packDirTo(c, dir); err != nil {
		return digest.Digest{}, 0, err
	}
	return h.Digest(), c.n, nil
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// linkCurrent puts the output at cur, left unread because it held its
// node's value, into the staging path by hard links (a unit is staged
// whole, and another of its outputs changed), and checks that the linked
// bytes still have the entry's digest. It returns their size.
func linkCurrent(cur, path string, dir bool, sum digest.Digest) (int64, error) {
	changed := fmt.Errorf("%s changed while apply ran; apply again to rewrite it", cur)
	if !dir {
		if err := os.Link(cur, path); err != nil {
			return 0, err
		}
		got, err := digest.File(path)
		if err != nil || got != sum {
			return 0, changed
		}
		return outputSize(path), nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(cur)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if err := os.Link(filepath.Join(cur, e.Name()), filepath.Join(path, e.Name())); err != nil {
			return 0, err
		}
	}
	if got, _, err := packCurrent(path); err != nil || got != sum {
		return 0, changed
	}
	return outputSize(path), nil
}

// fileDigest hashes an output file, through the store's digest memo when
// it has one (*cache.Store: keyed by path, size, mtime, ctime, inode and
// device, as for inputs; ctime cannot be set back by a user, so a file
// changed in place misses the memo), so that a warm apply does not re-hash
// exports it hashed before.
func (x *execution) fileDigest(path string) (digest.Digest, error) {
	if d, ok := x.e.store.(interface {
		FileDigest(string) (digest.Digest, error)
	}); ok {
		return d.FileDigest(path)
	}
	return digest.File(path)
}

package executor

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A bundle is the cached form of an artifact that is a directory (a Hugging
// Face checkpoint): a tar of its regular files, written with fixed headers
// (sorted names, mode 0644, zero times) so the same files always make the
// same bytes.

// PackDir bundles the regular files directly inside dir.
func PackDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	if err := packDirTo(&buf, dir); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// packDirTo writes PackDir's bundle of dir to w, streaming each file (a
// hasher need not hold the bundle).
func packDirTo(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := packFile(tw, dir, name); err != nil {
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

func packFile(tw *tar.Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that grew since the stat fails the tar writer (too long);
	// one that shrank, the copy's count.
	n, err := io.Copy(tw, f)
	if err == nil && n != st.Size() {
		err = fmt.Errorf("changed size while packed (%d of %d bytes)", n, st.Size())
	}
	return err
}

// extractBundle writes a bundle's files into dir (created if missing, in a
// staging directory no reader looks at) and returns the bytes written.
func extractBundle(bundle []byte, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	var total int64
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("bundle: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || strings.ContainsAny(hdr.Name, `/\`) || hdr.Name == ".." || hdr.Name == "." {
			return total, fmt.Errorf("bundle entry %q is not a plain file name", hdr.Name)
		}
		f, err := os.OpenFile(filepath.Join(dir, hdr.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return total, err
		}
		n, err := io.Copy(f, tr)
		total += n
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return total, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

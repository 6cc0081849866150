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
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", name, err)
		}
		if _, err := tw.Write(b); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// unpackDir writes a bundle's files into a fresh directory beside dst and
// renames it over dst, so a reader never sees half an artifact.
func unpackDir(bundle []byte, dst string) error {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("output %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("output %s: %w", dst, err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("output %s: bundle: %w", dst, err)
		}
		if hdr.Typeflag != tar.TypeReg || strings.ContainsAny(hdr.Name, `/\`) || hdr.Name == ".." || hdr.Name == "." {
			return fmt.Errorf("output %s: bundle entry %q is not a plain file name", dst, hdr.Name)
		}
		f, err := os.OpenFile(filepath.Join(tmp, hdr.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("output %s: %w", dst, err)
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("output %s: %s: %w", dst, hdr.Name, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("output %s: %w", dst, err)
	}
	// A directory cannot be renamed over a non-empty one: move the old one
	// aside first, and remove it once the new one is in place.
	var old string
	if _, err := os.Stat(dst); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dst, old); err != nil {
			return fmt.Errorf("output %s: %w", dst, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		if old != "" {
			os.Rename(old, dst)
		}
		return fmt.Errorf("output %s: %w", dst, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleTensors() []Tensor {
	return []Tensor{
		F32("embed", []int{4, 3}, []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}),
		F32("layer.0.w", []int{2, 2}, []float32{-1, -2, -3, -4}),
		I32("ids", []int{5}, []int32{1, 2, 3, 4, 5}),
		F32("layer.1.w", []int{3}, []float32{0.5, 0.25, 0.125}),
		F32("norm", []int{2}, []float32{1, 1}),
	}
}

func TestWriteFileOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	in := sampleTensors()
	meta := map[string]string{"format": "pt"}
	if err := WriteFile(path, in, meta); err != nil {
		t.Fatal(err)
	}
	want, _ := Encode(in, meta)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("WriteFile wrote different bytes than Encode")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temporary file left behind?)", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != path {
		t.Errorf("Path() = %q", f.Path())
	}
	if diff := cmp.Diff(in, f.Tensors()); diff != "" {
		t.Errorf("tensors (-written +opened):\n%s", diff)
	}
	if diff := cmp.Diff(meta, f.Metadata); diff != "" {
		t.Error(diff)
	}
	w, _ := f.Tensor("layer.1.w")
	v, err := w.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float32{0.5, 0.25, 0.125}, v); diff != "" {
		t.Error(diff)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("embed"); ok {
		t.Error("a closed file still hands out tensors that alias an unmapped region")
	}

	// Overwriting is atomic too: the new content replaces the old.
	if err := WriteFile(path, in[:1], nil); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if diff := cmp.Diff([]string{"embed"}, f.Names()); diff != "" {
		t.Error(diff)
	}
}

func TestWriteFileLeavesOldFileOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := WriteFile(path, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := []Tensor{{Name: "w", DType: DTypeF32, Shape: []int{3}, Data: make([]byte, 4)}}
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("WriteFile accepted a tensor whose bytes do not match its shape")
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("a failed WriteFile changed the existing file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the directory, want 1: the temporary file was not removed", len(entries))
	}
}

func TestOpenNamesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.safetensors", nil)
	_, err := Open(empty)
	if want := "safetensors: " + empty + ": 0 bytes is too short for the 8-byte header length"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	// A length prefix claiming far more than the file is refused from the
	// 8-byte prefix alone.
	hostile := write("hostile.safetensors", append(binary.LittleEndian.AppendUint64(nil, 1<<40), "{}"...))
	_, err = Open(hostile)
	if want := "safetensors: " + hostile + ": header length 1099511627776 exceeds the 104857600-byte limit"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	bad := write("bad.safetensors", st(`{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}`, make([]byte, 16)))
	_, err = Open(bad)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.File != bad || fe.Tensor != "w" {
		t.Errorf("error = %#v, want a FormatError naming %s and tensor w", err, bad)
	}
	_, err = Open(filepath.Join(dir, "absent.safetensors"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestShardedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := sampleTensors() // 48, 16, 20, 12, 8 bytes
	names, err := WriteSharded(dir, in, map[string]string{"format": "pt"}, 40)
	if err != nil {
		t.Fatal(err)
	}
	// embed (48) exceeds the limit alone; 16+20 fit; 12+8 fit.
	wantNames := []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Fatalf("shard names (-want +got):\n%s", diff)
	}
	raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	wantMap := map[string]string{"embed": wantNames[0], "layer.0.w": wantNames[1], "ids": wantNames[1], "layer.1.w": wantNames[2], "norm": wantNames[2]}
	if diff := cmp.Diff(wantMap, idx.WeightMap); diff != "" {
		t.Errorf("weight_map (-want +got):\n%s", diff)
	}
	if idx.Metadata.TotalSize != 104 {
		t.Errorf("total_size = %d, want 104", idx.Metadata.TotalSize)
	}

	ix, err := OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.TotalSize != 104 {
		t.Errorf("TotalSize = %d", ix.TotalSize)
	}
	if diff := cmp.Diff([]string{"embed", "ids", "layer.0.w", "layer.1.w", "norm"}, ix.Names()); diff != "" {
		t.Error(diff)
	}
	for _, want := range in {
		got, ok := ix.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %q missing", want.Name)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tensor %q (-want +got):\n%s", want.Name, diff)
		}
		if shard := ix.Shard(want.Name); filepath.Base(shard) != wantMap[want.Name] {
			t.Errorf("Shard(%q) = %s", want.Name, shard)
		}
	}
	if _, ok := ix.Tensor("absent"); ok {
		t.Error("found an absent tensor")
	}
}

func TestOpenIndexErrorsNameTheShard(t *testing.T) {
	setup := func(t *testing.T, edit func(m map[string]string)) string {
		dir := t.TempDir()
		if _, err := WriteSharded(dir, sampleTensors(), nil, 40); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, IndexFileName)
		raw, _ := os.ReadFile(p)
		var idx map[string]json.RawMessage
		json.Unmarshal(raw, &idx)
		var wm map[string]string
		json.Unmarshal(idx["weight_map"], &wm)
		edit(wm)
		idx["weight_map"], _ = json.Marshal(wm)
		raw, _ = json.Marshal(idx)
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("tensor not in its shard", func(t *testing.T) {
		dir := setup(t, func(m map[string]string) { m["norm"] = "model-00001-of-00003.safetensors" })
		_, err := OpenIndex(dir)
		want := "safetensors: " + filepath.Join(dir, IndexFileName) + `: tensor "norm": listed in shard model-00001-of-00003.safetensors, which does not contain it`
		if err == nil || err.Error() != want {
			t.Errorf("error = %v\nwant %s", err, want)
		}
	})
	t.Run("missing shard file", func(t *testing.T) {
		dir := setup(t, func(m map[string]string) { m["norm"] = "model-00009-of-00009.safetensors" })
		_, err := OpenIndex(dir)
		if err == nil || !strings.Contains(err.Error(), `shard of tensor "norm"`) || !strings.Contains(err.Error(), "model-00009-of-00009.safetensors") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error = %v, want it to name tensor norm and the missing shard", err)
		}
	})
	t.Run("path outside the directory", func(t *testing.T) {
		dir := setup(t, func(m map[string]string) { m["norm"] = "../model-00001-of-00003.safetensors" })
		_, err := OpenIndex(dir)
		want := "safetensors: " + filepath.Join(dir, IndexFileName) + `: tensor "norm": shard "../model-00001-of-00003.safetensors" is not a file name in the index's directory`
		if err == nil || err.Error() != want {
			t.Errorf("error = %v\nwant %s", err, want)
		}
	})
}

func TestOpenDir(t *testing.T) {
	single, sharded := t.TempDir(), t.TempDir()
	if err := WriteFile(filepath.Join(single, SingleFileName), sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSharded(sharded, sampleTensors(), nil, 40); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{single, sharded} {
		r, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := r.Tensor("layer.0.w")
		v, err := w.Float32()
		if !ok || err != nil || !cmp.Equal(v, []float32{-1, -2, -3, -4}) {
			t.Errorf("%s: layer.0.w = %v, %v, %v", dir, v, ok, err)
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
	_, err := OpenDir(t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory: error = %v, want os.ErrNotExist", err)
	}
}

// TestOpenSparse: a file whose header and size describe 400 MiB of weights
// but which stores none of them (made with truncate) is refused at Open,
// before anything converts, and so allocates, its tensors.
func TestOpenSparse(t *testing.T) {
	const n = 100 << 20 // float32 values
	hdr := []byte(`{"w":{"dtype":"F32","shape":[104857600],"data_offsets":[0,419430400]}}`)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))))
	f.Write(hdr)
	if err := f.Truncate(int64(8 + len(hdr) + 4*n)); err != nil {
		t.Skipf("cannot make a sparse file here: %v", err)
	}
	f.Close()
	if st, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Blocks == 0 {
		t.Skip("this file system reports no block counts")
	}
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), path+": sparse file") {
		t.Fatalf("Open(sparse) = %v, want a sparse-file error naming %s", err, path)
	}
}

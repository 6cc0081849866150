package modelref

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	commitMain = "0123456789abcdef0123456789abcdef01234567"
	commitV1   = "89abcdef0123456789abcdef0123456789abcdef"
)

// fakeHub builds a hub cache holding Qwen/Qwen3-0.6B with a main branch, a
// v1 tag, a pull-request ref and a snapshot per commit, in huggingface_hub's
// layout.
func fakeHub(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	repo := filepath.Join(cache, "models--Qwen--Qwen3-0.6B")
	for _, c := range []string{commitMain, commitV1} {
		snap := filepath.Join(repo, "snapshots", c)
		if err := os.MkdirAll(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, "config.json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for ref, c := range map[string]string{"main": commitMain + "\n", "v1": commitV1, "refs/pr/3": commitV1, "broken": "not-a-hash"} {
		p := filepath.Join(repo, "refs", filepath.FromSlash(ref))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A commit whose snapshot was never downloaded.
	os.WriteFile(filepath.Join(repo, "refs", "gone"), []byte(strings.Repeat("f", 40)), 0o644)
	return cache
}

func TestHub(t *testing.T) {
	cache := fakeHub(t)
	t.Setenv("HF_HUB_CACHE", cache)
	snap := func(c string) string { return filepath.Join(cache, "models--Qwen--Qwen3-0.6B", "snapshots", c) }
	for ref, want := range map[string]Resolved{
		"hf:Qwen/Qwen3-0.6B":             {Revision: "main", Commit: commitMain},
		"hf:Qwen/Qwen3-0.6B@main":        {Revision: "main", Commit: commitMain},
		"hf:Qwen/Qwen3-0.6B@v1":          {Revision: "v1", Commit: commitV1},
		"hf:Qwen/Qwen3-0.6B@refs/pr/3":   {Revision: "refs/pr/3", Commit: commitV1},
		"hf:Qwen/Qwen3-0.6B@" + commitV1: {Revision: commitV1, Commit: commitV1},
	} {
		want.Ref, want.Kind, want.Repo, want.Path = ref, HFDir, "Qwen/Qwen3-0.6B", snap(want.Commit)
		got, err := Resolve(ref)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %+v, %v\nwant %+v", ref, got, err, want)
		}
	}

	repo := filepath.Join(cache, "models--Qwen--Qwen3-0.6B")
	for ref, want := range map[string]string{
		"hf:Qwen/Qwen3-1.7B": `modelref: "hf:Qwen/Qwen3-1.7B": not in the local hub cache ` + cache + ` (from HF_HUB_CACHE): no ` +
			filepath.Join(cache, "models--Qwen--Qwen3-1.7B"),
		"hf:Qwen/Qwen3-0.6B@dev": `modelref: "hf:Qwen/Qwen3-0.6B@dev": not in the local hub cache ` + cache + ` (from HF_HUB_CACHE): no ` +
			filepath.Join(repo, "refs", "dev"),
		"hf:Qwen/Qwen3-0.6B@gone": `modelref: "hf:Qwen/Qwen3-0.6B@gone": not in the local hub cache ` + cache + ` (from HF_HUB_CACHE): revision gone is commit ` +
			strings.Repeat("f", 40) + ", but there is no " + snap(strings.Repeat("f", 40)),
		"hf:Qwen/Qwen3-0.6B@broken":  `modelref: "hf:Qwen/Qwen3-0.6B@broken": ` + filepath.Join(repo, "refs", "broken") + ` holds "not-a-hash", not a commit hash`,
		"hf:Qwen3-0.6B":              `modelref: "hf:Qwen3-0.6B": want hf:ORG/NAME or hf:ORG/NAME@REVISION`,
		"hf:Qwen/../x":               `modelref: "hf:Qwen/../x": want hf:ORG/NAME or hf:ORG/NAME@REVISION`,
		"hf:Qwen/Qwen3-0.6B@../../x": `modelref: "hf:Qwen/Qwen3-0.6B@../../x": revision "../../x" is not a branch, tag or commit`,
		"hf:Qwen/Qwen3-0.6B@":        `modelref: "hf:Qwen/Qwen3-0.6B@": revision "" is not a branch, tag or commit`,
	} {
		if _, err := Resolve(ref); err == nil || err.Error() != want {
			t.Errorf("Resolve(%q):\n got %v\nwant %s", ref, err, want)
		}
	}
}

func TestHubCacheChoice(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "/h")
	t.Setenv("XDG_CACHE_HOME", "/x")
	if d, from := HubCache(); d != "/h/hub" || from != "HF_HOME" {
		t.Errorf("HF_HOME: %s from %s", d, from)
	}
	t.Setenv("HF_HOME", "")
	if d, from := HubCache(); d != "/x/huggingface/hub" || from != "XDG_CACHE_HOME" {
		t.Errorf("XDG_CACHE_HOME: %s from %s", d, from)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, from := HubCache(); d != "/home/u/.cache/huggingface/hub" || from != "the default" {
		t.Errorf("default: %s from %s", d, from)
	}
	t.Setenv("HF_HUB_CACHE", "/c")
	if d, from := HubCache(); d != "/c" || from != "HF_HUB_CACHE" {
		t.Errorf("HF_HUB_CACHE: %s from %s", d, from)
	}
}

func TestLocal(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	os.Mkdir(ckpt, 0o755)
	os.WriteFile(filepath.Join(ckpt, "config.json"), []byte("{}"), 0o644)
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	for _, name := range []string{"m.gguf", "m.bin", "m.pt"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	for ref, kind := range map[string]Kind{ckpt: HFDir, filepath.Join(dir, "m.gguf"): GGUF, filepath.Join(dir, "m.bin"): Llama2c} {
		r, err := Resolve(ref)
		if err != nil || r.Kind != kind || r.Path != ref || r.Ref != ref || r.Commit != "" {
			t.Errorf("Resolve(%q) = %+v, %v; want kind %v", ref, r, err, kind)
		}
	}
	// A relative path resolves to an absolute one.
	t.Chdir(dir)
	if r, err := Resolve("ckpt"); err != nil || r.Path != ckpt || r.Ref != "ckpt" {
		t.Errorf("relative: %+v, %v", r, err)
	}
	for ref, want := range map[string]string{
		"empty": `modelref: "empty": directory ` + filepath.Join(dir, "empty") + ` has no config.json, so it is no Hugging Face checkpoint`,
		"m.pt":  `modelref: "m.pt": file ` + filepath.Join(dir, "m.pt") + ` is neither .gguf nor a llama2.c .bin checkpoint`,
		"nope":  `modelref: "nope": stat ` + filepath.Join(dir, "nope") + `: no such file or directory`,
		"":      "modelref: empty model reference",
	} {
		if _, err := Resolve(ref); err == nil || err.Error() != want {
			t.Errorf("Resolve(%q):\n got %v\nwant %s", ref, err, want)
		}
	}
}

package cache

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"lrmc/digest"
)

// keysOf returns the keys of entries in order.
func keysOf(es []Entry) []digest.Digest {
	var ks []digest.Digest
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	return ks
}

func TestPutRecordsItsWriter(t *testing.T) {
	s := openTest(t, "", Options{})
	a, b := key("a"), key("b")
	if err := s.Put(a, "op", "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.SetOrigin("/r/one.cue", map[digest.Digest][]string{a: {"r1", "r2"}, b: {"r2"}})
	if err := s.Put(b, "op", "b", []byte("y")); err != nil {
		t.Fatal(err)
	}
	// Storing the same value again fills in a writer that was missing.
	if err := s.Put(a, "op", "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.SetOrigin("/r/two.cue", map[digest.Digest][]string{b: {"other"}})
	if err := s.Put(b, "op", "b", []byte("y")); err != nil { // keeps its first writer
		t.Fatal(err)
	}
	for k, want := range map[digest.Digest][2]any{a: {"/r/one.cue", []string{"r1", "r2"}}, b: {"/r/one.cue", []string{"r2"}}} {
		m, _, err := s.Stat(k)
		if err != nil || m.Recipe != want[0] || !reflect.DeepEqual(m.Runs, want[1]) {
			t.Errorf("%s: writer %q %v (%v), want %v", k.Short(), m.Recipe, m.Runs, err, want)
		}
	}
}

// applyStore holds entries e1..e4 of 100, 200, 300, 400 bytes last used at
// t0+1h..t0+4h, with e1 and e2 needed by recipe one's runs and e4 by
// recipe two, whose file is then deleted (its record goes stale).
func applyStore(t *testing.T) (*Store, []digest.Digest, time.Time, string) {
	t.Helper()
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.cue"), filepath.Join(dir, "two.cue")
	for _, p := range []string{one, two} {
		os.WriteFile(p, []byte("recipe"), 0o644)
	}
	s := openTest(t, "", Options{})
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	clock := t0
	setClock(s, &clock)
	var ks []digest.Digest
	for i := range 4 {
		clock = t0.Add(time.Duration(i+1) * time.Hour)
		k := key(string(rune('1' + i)))
		ks = append(ks, k)
		if err := s.Put(k, "op"+string(rune('a'+i%2)), "e", make([]byte, 100*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordApply(Apply{Recipe: one, Time: clock, Keys: map[digest.Digest][]string{ks[0]: {"x", "y"}, ks[1]: {"y"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordApply(Apply{Recipe: two, Time: clock, Keys: map[digest.Digest][]string{ks[3]: {"z"}}}); err != nil {
		t.Fatal(err)
	}
	return s, ks, t0, two
}

func TestEntriesSayWhichLatestApplyNeedsThem(t *testing.T) {
	s, ks, _, two := applyStore(t)
	es, err := s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(es), []digest.Digest{ks[3], ks[2], ks[1], ks[0]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("entries not most recently used first")
	}
	one := filepath.Join(filepath.Dir(two), "one.cue")
	want := map[digest.Digest][]RunRef{
		ks[0]: {{one, []string{"x", "y"}}}, ks[1]: {{one, []string{"y"}}}, ks[2]: nil, ks[3]: {{two, []string{"z"}}},
	}
	for _, e := range es {
		if !reflect.DeepEqual(e.UsedBy, want[e.Key]) || e.Reclaimable() != (want[e.Key] == nil) {
			t.Errorf("%s used by %v (reclaimable %v), want %v", e.Key.Short(), e.UsedBy, e.Reclaimable(), want[e.Key])
		}
	}
	// The next apply of recipe one no longer has run x and needs e2 only.
	if err := s.RecordApply(Apply{Recipe: one, Keys: map[digest.Digest][]string{ks[1]: {"y"}}}); err != nil {
		t.Fatal(err)
	}
	// Recipe two's file is gone: its record protects nothing.
	os.Remove(two)
	es, _ = s.Entries()
	var reclaimable []digest.Digest
	for _, e := range es {
		if e.Reclaimable() {
			reclaimable = append(reclaimable, e.Key)
		}
	}
	if want := []digest.Digest{ks[3], ks[2], ks[0]}; !reflect.DeepEqual(reclaimable, want) {
		t.Errorf("reclaimable %v, want e4 (stale record), e3, e1 (dropped run)", reclaimable)
	}
	applies, _ := s.Applies()
	if len(applies) != 2 || applies[0].Recipe != one || applies[0].Stale || !applies[1].Stale {
		t.Errorf("applies %+v", applies)
	}
}

func TestPrunePolicies(t *testing.T) {
	hour := time.Hour
	for _, tc := range []struct {
		name string
		p    Policy
		want []int // indices into the keys, in eviction order
	}{
		{"reclaimable only, least recently used first", Policy{MaxBytes: NoSizeTarget}, []int{2}},
		{"size target: reclaimable first, then needed ones by LRU", Policy{MaxBytes: 400}, []int{2, 0, 1}},
		{"size target met by the reclaimable alone", Policy{MaxBytes: 800}, []int{2}},
		{"protected entries stay even over the target", Policy{MaxBytes: 0, Protect: map[digest.Digest]bool{key("1"): true, key("4"): true}}, []int{2, 1}},
		// clock is t0+4h: e3 (used at 3h) and e4 are within 90 minutes.
		{"keep-duration keeps recently used entries", Policy{MaxBytes: 0, KeepDuration: 90 * time.Minute}, []int{0, 1}},
		{"keep-duration without a size target", Policy{MaxBytes: NoSizeTarget, KeepDuration: 2 * hour}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ks, _, _ := applyStore(t)
			var want []digest.Digest
			for _, i := range tc.want {
				want = append(want, ks[i])
			}
			dry := tc.p
			dry.DryRun = true
			got, err := s.Prune(dry)
			if err != nil || !slices.Equal(keysOf(got), want) {
				t.Fatalf("dry run selects %v (%v), want %v", keysOf(got), err, want)
			}
			if n, _, _ := s.Usage(); n != 4 {
				t.Fatalf("dry run evicted: %d entries left", n)
			}
			got, err = s.Prune(tc.p)
			if err != nil || !slices.Equal(keysOf(got), want) {
				t.Fatalf("prune evicted %v (%v), want %v", keysOf(got), err, want)
			}
			for i, k := range ks {
				_, ok, _ := s.Stat(k)
				if ok == slices.Contains(want, k) {
					t.Errorf("e%d present %v after prune", i+1, ok)
				}
			}
		})
	}
}

func TestPruneDropsStaleApplyRecords(t *testing.T) {
	s, ks, _, two := applyStore(t)
	os.Remove(two)
	got, err := s.Prune(Policy{MaxBytes: NoSizeTarget})
	if err != nil || !slices.Equal(keysOf(got), []digest.Digest{ks[2], ks[3]}) {
		t.Fatalf("evicted %v (%v), want e3 and e4", keysOf(got), err)
	}
	applies, _ := s.Applies()
	if len(applies) != 1 || applies[0].Recipe != filepath.Join(filepath.Dir(two), "one.cue") {
		t.Errorf("apply records after gc: %+v", applies)
	}
}

func TestEnforceBudget(t *testing.T) {
	s, ks, _, _ := applyStore(t)
	removed, left, err := s.EnforceBudget(1000, nil)
	if err != nil || removed != nil || left != 1000 {
		t.Fatalf("at budget: removed %v, left %d, %v", keysOf(removed), left, err)
	}
	// The current apply needs e1 and e3: e2 (needed by another apply)
	// goes after the reclaimable ones, but the protected stay even though
	// the budget is not met.
	protect := map[digest.Digest]bool{ks[0]: true, ks[2]: true}
	removed, left, err = s.EnforceBudget(300, protect)
	if err != nil || !slices.Equal(keysOf(removed), []digest.Digest{ks[1], ks[3]}) || left != 400 {
		t.Fatalf("over budget: removed %v, left %d, %v; want e2, e4 and 400 left", keysOf(removed), left, err)
	}
}

// Repair keeps what it salvages attributed: entries keep their writer and
// each recipe's apply record is copied.
func TestRepairKeepsWritersAndApplyRecords(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(t.TempDir(), "r.cue")
	os.WriteFile(recipe, []byte("recipe"), 0o644)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := key("k")
	s.SetOrigin(recipe, map[digest.Digest][]string{k: {"run"}})
	if err := s.Put(k, "op", "e", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordApply(Apply{Recipe: recipe, Keys: map[digest.Digest][]string{k: {"run"}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, "badger", "MANIFEST"), 0); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(dir, Options{})
	if err != nil || len(rep.Kept) != 1 {
		t.Fatalf("repair: %+v, %v", rep, err)
	}
	s = openTest(t, dir, Options{})
	es, err := s.Entries()
	if err != nil || len(es) != 1 {
		t.Fatalf("entries after repair: %v, %v", es, err)
	}
	e := es[0]
	if e.Recipe != recipe || !slices.Equal(e.Runs, []string{"run"}) || len(e.UsedBy) != 1 || !slices.Equal(e.UsedBy[0].Runs, []string{"run"}) {
		t.Errorf("after repair: written by %q %v, used by %+v", e.Recipe, e.Runs, e.UsedBy)
	}
}

// An apply that needs what the recipe's last apply needed writes nothing.
func TestRecordApplyUnchangedWritesNothing(t *testing.T) {
	s := openTest(t, "", Options{})
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	keys := map[digest.Digest][]string{key("a"): {"x"}}
	s.RecordApply(Apply{Recipe: "/r.cue", Time: t0, Keys: keys})
	s.RecordApply(Apply{Recipe: "/r.cue", Time: t0.Add(time.Hour), Keys: map[digest.Digest][]string{key("a"): {"x"}}})
	if a, ok := s.readApply("/r.cue"); !ok || !a.Time.Equal(t0) {
		t.Errorf("same keys rewrote the record: %+v", a)
	}
	s.RecordApply(Apply{Recipe: "/r.cue", Time: t0.Add(2 * time.Hour), Keys: map[digest.Digest][]string{key("a"): {"x", "y"}}})
	if a, ok := s.readApply("/r.cue"); !ok || !a.Time.Equal(t0.Add(2*time.Hour)) || !slices.Equal(a.Keys[key("a")], []string{"x", "y"}) {
		t.Errorf("other runs did not replace the record: %+v", a)
	}
}

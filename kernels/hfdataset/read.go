package hfdataset

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// MaxRows bounds the rows of one parquet file, checked against its footer
// before anything is read: far above any evaluation split (ARC-Easy's
// train split has 2,251 rows, WinoGrande's xl 40,398).
const MaxRows = 1 << 24

// Columns returns the top-level column names of a parquet file, in the
// file's order.
func Columns(path string) ([]string, error) {
	f, pf, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return columns(pf), nil
}

func columns(pf *parquet.File) []string {
	var out []string
	for _, fl := range pf.Schema().Fields() {
		out = append(out, fl.Name())
	}
	return out
}

// ReadRows reads every row of a parquet file as the object a jsonl line
// would decode to: strings (byte arrays too), float64 numbers (every
// integer and float type), booleans, nil for nulls, []any for lists and
// map[string]any for groups (ARC's choices {text: [...], label: [...]}).
// A malformed file is an error naming it, never a panic; a value of a
// type JSON cannot hold is an error naming its column.
func ReadRows(path string) (rows []map[string]any, err error) {
	f, pf, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n := pf.NumRows()
	if n < 0 || n > MaxRows {
		return nil, fmt.Errorf("%s: %d rows in the footer; at most %d are read", path, n, MaxRows)
	}
	// The reader decodes pages as it goes; a page that contradicts the
	// footer can make it panic, which must not take the process down.
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("%s: malformed parquet data: %v", path, p)
		}
	}()
	r := parquet.NewReader(pf)
	defer r.Close()
	rows = make([]map[string]any, 0, n)
	for i := int64(0); ; i++ {
		row := map[string]any{}
		if err := r.Read(&row); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: row %d: %w", path, i, err)
		}
		if i >= n {
			return nil, fmt.Errorf("%s: more rows than the %d its footer counts", path, n)
		}
		doc, err := normalize(row, "")
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, i, err)
		}
		rows = append(rows, doc.(map[string]any))
	}
	if int64(len(rows)) != n {
		return nil, fmt.Errorf("%s: %d rows read, but its footer counts %d", path, len(rows), n)
	}
	return rows, nil
}

// open opens a parquet file and reads its footer.
func open(path string) (*os.File, *parquet.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	pf, err := openFooter(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a readable parquet file: %w", path, err)
	}
	return f, pf, nil
}

func openFooter(r io.ReaderAt, size int64) (pf *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			pf, err = nil, fmt.Errorf("malformed footer: %v", p)
		}
	}()
	// Page indexes and bloom filters are not needed to read every row.
	return parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
}

// normalize turns a decoded value into what encoding/json would give for
// the same data; column is its path, for messages.
func normalize(v any, column string) (any, error) {
	switch v := v.(type) {
	case nil, string, bool, float64:
		return v, nil
	case []byte:
		return string(v), nil
	case float32:
		return float64(v), nil
	case int:
		return float64(v), nil
	case int8:
		return float64(v), nil
	case int16:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case uint:
		return float64(v), nil
	case uint8:
		return float64(v), nil
	case uint16:
		return float64(v), nil
	case uint32:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			var err error
			if out[i], err = normalize(x, fmt.Sprintf("%s[%d]", column, i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		// In name order, so the first bad column reported is always the
		// same one.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			var err error
			if out[k], err = normalize(v[k], strings.TrimPrefix(column+"."+k, ".")); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("column %q holds a %T, which has no JSON form (want strings, numbers, booleans, lists or groups)", column, v)
}

// Describe names a split's files for messages: the one file, or the
// first and how many follow.
func Describe(files []string) string {
	switch len(files) {
	case 0:
		return "no files"
	case 1:
		return files[0]
	}
	return fmt.Sprintf("%s (and %d more shards)", files[0], len(files)-1)
}

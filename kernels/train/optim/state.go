package optim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// stateMagic starts a serialized AdamW state; the digit is the format
// version.
const stateMagic = "LRMCADW1"

// MarshalBinary serializes everything a resumed run needs from the optimizer:
// the step count, the hyperparameters, and per parameter (in order) its name,
// its values and both moments. Floats are stored as their IEEE bits, little
// endian, so a restore is exact.
func (o *AdamW) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) } // bytes.Buffer never fails
	w(o.step)
	w([4]float64{o.Beta1, o.Beta2, o.Eps, o.WeightDecay})
	w(uint32(len(o.params)))
	for i, p := range o.params {
		w(uint32(len(p.Name)))
		b.WriteString(p.Name)
		w(uint64(len(p.Data)))
		w(p.Data)
		w(o.m[i])
		w(o.v[i])
	}
	return b.Bytes(), nil
}

// UnmarshalBinary restores a state written by MarshalBinary into an
// optimizer built over parameters of the same names and sizes, in the same
// order, overwriting their values.
func (o *AdamW) UnmarshalBinary(data []byte) error {
	r := bytes.NewReader(data)
	magic := make([]byte, len(stateMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != stateMagic {
		return fmt.Errorf("optim: AdamW state does not start with %q", stateMagic)
	}
	rd := func(what string, v any) error {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return fmt.Errorf("optim: AdamW state: reading %s: %w", what, err)
		}
		return nil
	}
	var step int64
	var hyper [4]float64
	var count uint32
	if err := errors.Join(rd("step", &step), rd("hyperparameters", &hyper), rd("parameter count", &count)); err != nil {
		return err
	}
	if int(count) != len(o.params) {
		return fmt.Errorf("optim: AdamW state holds %d parameters, optimizer has %d", count, len(o.params))
	}
	// Decode everything before touching the optimizer, so a bad state
	// leaves it as it was.
	type entry struct{ data, m, v []float32 }
	entries := make([]entry, count)
	for i, p := range o.params {
		var nameLen uint32
		if err := rd("name length", &nameLen); err != nil {
			return err
		}
		if int64(nameLen) > int64(r.Len()) {
			return fmt.Errorf("optim: AdamW state: parameter %d name length %d exceeds the data", i, nameLen)
		}
		name := make([]byte, nameLen)
		io.ReadFull(r, name)
		if string(name) != p.Name {
			return fmt.Errorf("optim: AdamW state: parameter %d is %q, optimizer has %q", i, name, p.Name)
		}
		var n uint64
		if err := rd(p.Name+" size", &n); err != nil {
			return err
		}
		if n != uint64(len(p.Data)) {
			return fmt.Errorf("optim: AdamW state: %s has %d values, parameter has %d", p.Name, n, len(p.Data))
		}
		e := entry{make([]float32, n), make([]float32, n), make([]float32, n)}
		if err := errors.Join(rd(p.Name+" values", e.data), rd(p.Name+" first moment", e.m), rd(p.Name+" second moment", e.v)); err != nil {
			return err
		}
		entries[i] = e
	}
	if r.Len() != 0 {
		return fmt.Errorf("optim: AdamW state has %d trailing bytes", r.Len())
	}
	o.step = step
	o.Beta1, o.Beta2, o.Eps, o.WeightDecay = hyper[0], hyper[1], hyper[2], hyper[3]
	for i, p := range o.params {
		copy(p.Data, entries[i].data)
		copy(o.m[i], entries[i].m)
		copy(o.v[i], entries[i].v)
	}
	return nil
}

package train

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"lrmc/kernels/tensor"
)

// TeacherLogits are a teacher model's logits at every position of a batch,
// either all of them or only the K largest per position.
//
// With K > 0 the teacher distribution is approximated by its top K entries,
// renormalized: p_j = softmax over the K cached logits (divided by the
// temperature), and zero for every other token. KL(p ‖ q) is then summed over
// those K tokens only, against the student's full softmax q. This drops the
// teacher's tail mass, 1 − Σ_topK p_true, which for a peaked teacher and K of
// a few dozen is a small fraction; it is the usual trade for caching logits
// of a large vocabulary at K/Vocab of the size.
type TeacherLogits struct {
	K      int     // 0: Logits holds the full [rows, Vocab]
	Index  []int32 // [rows, K] token ids (K > 0 only)
	Logits []float32
}

func (tl *TeacherLogits) check(rows, vocab int) error {
	if tl.K == 0 {
		if len(tl.Logits) != rows*vocab {
			return fmt.Errorf("train: teacher logits hold %d floats, want %d rows × vocab %d", len(tl.Logits), rows, vocab)
		}
		return nil
	}
	if tl.K < 0 || tl.K > vocab || len(tl.Index) != rows*tl.K || len(tl.Logits) != rows*tl.K {
		return fmt.Errorf("train: teacher top-%d cache holds %d ids and %d logits, want %d rows × %d",
			tl.K, len(tl.Index), len(tl.Logits), rows, tl.K)
	}
	for i, id := range tl.Index {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("train: teacher top-k id %d at entry %d outside the vocabulary [0, %d)", id, i, vocab)
		}
	}
	return nil
}

// TopK keeps the k largest logits of each row of a teacher's full logits
// [rows, vocab], largest first (ties by lower id), for a TeacherLogits cache.
func TopK(logits []float32, rows, vocab, k int) *TeacherLogits {
	tl := &TeacherLogits{K: k, Index: make([]int32, rows*k), Logits: make([]float32, rows*k)}
	ids := make([]int32, vocab)
	for r := range rows {
		z := logits[r*vocab : (r+1)*vocab]
		for i := range ids {
			ids[i] = int32(i)
		}
		slices.SortStableFunc(ids, func(a, b int32) int { return cmp.Compare(z[b], z[a]) })
		for j := range k {
			tl.Index[r*k+j] = ids[j]
			tl.Logits[r*k+j] = z[ids[j]]
		}
	}
	return tl
}

// head applies the final norm and the classifier to the rows that have a
// target, chunk by chunk, and evaluates the objective. With backward it
// leaves ∂(gradScale·Total)/∂xn in n.dxn and accumulates the classifier's
// gradient.
func (n *Net) head(bt Batch, gradScale float32, backward bool) Loss {
	c := n.c
	d, vocab := c.Dim, c.Vocab
	rows := n.b * n.t
	hf := n.ckpt[len(n.layers)]
	tensor.RMSNormRows(n.xn, hf, n.final.Data, c.NormEps)
	active := n.active[:0]
	for r, tg := range bt.Targets {
		if tg >= 0 {
			active = append(active, int32(r))
		}
	}
	if backward {
		clear(n.dxn[:rows*d])
	}
	loss := Loss{Tokens: len(active)}
	if len(active) == 0 {
		return loss
	}
	obj := n.o.objective
	temp := obj.temperature()
	// Each term is a mean over the active positions.
	wce := gradScale * obj.CE / float32(len(active))
	wkl := gradScale * obj.KL * temp / float32(len(active))
	chunk := len(n.xc) / d
	for lo := 0; lo < len(active); lo += chunk {
		rs := active[lo:min(lo+chunk, len(active))]
		m := len(rs)
		for i, r := range rs {
			copy(n.xc[i*d:(i+1)*d], n.xn[int(r)*d:(int(r)+1)*d])
		}
		z := n.logits[:m*vocab]
		n.prod.forward(z, n.xc, n.cls.Data, m, d, vocab)
		// Positions are independent (each overwrites its own logits with
		// their gradient): threads take ranges of them, and the losses are
		// summed in position order.
		ces, kls := n.rowCE[:m], n.rowKL[:m]
		parRows(m, vocab, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r := rs[i]
				ces[i], kls[i] = rowLoss(z[i*vocab:(i+1)*vocab], bt.Targets[r], teacherRow(bt.Teacher, int(r), vocab), obj, temp, wce, wkl, backward)
			}
		})
		for i := range m {
			loss.CE += ces[i]
			loss.KL += kls[i]
		}
		if !backward {
			continue
		}
		dxc := n.dxc[:m*d]
		clear(dxc)
		n.prod.dx(dxc, z, n.cls.Data, m, vocab, d)
		if n.cls.Grad != nil {
			n.prod.dw(n.cls.Grad, z, n.xc, m, vocab, d)
		}
		for i, r := range rs {
			copy(n.dxn[int(r)*d:(int(r)+1)*d], dxc[i*d:(i+1)*d])
		}
	}
	loss.CE /= float64(len(active))
	loss.KL /= float64(len(active))
	loss.Total = float64(obj.CE)*loss.CE + float64(obj.KL)*loss.KL
	return loss
}

// teacherRow is the teacher's row r: full logits, or top-k ids and logits.
type teacherRowT struct {
	ids    []int32
	logits []float32
}

func teacherRow(tl *TeacherLogits, r, vocab int) teacherRowT {
	if tl == nil {
		return teacherRowT{}
	}
	if tl.K == 0 {
		return teacherRowT{logits: tl.Logits[r*vocab : (r+1)*vocab]}
	}
	return teacherRowT{ids: tl.Index[r*tl.K : (r+1)*tl.K], logits: tl.Logits[r*tl.K : (r+1)*tl.K]}
}

// rowLoss returns one position's cross-entropy and T²-scaled KL, and with
// backward overwrites the logits z with the gradient
// wce·(softmax(z) − onehot) + wkl·(softmax(z/T) − p_teacher), where wkl
// already carries the factor T that remains of T² after the chain rule
// through z/T. Sums and logs are taken in float64.
func rowLoss(z []float32, target int32, teacher teacherRowT, obj Objective, temp, wce, wkl float32, backward bool) (ce, kl float64) {
	mx, lse := logSumExp(z)
	ce = -(float64(z[target]-mx) - lse)
	var smx float32
	var slse, tmx, tlse float64
	distill := obj.KL != 0
	if distill {
		// Student and teacher log-normalizers at temperature T.
		smx, slse = scaledLSE(z, temp)
		tz := teacher.logits
		tmxf, tl := scaledLSE(tz, temp)
		tmx, tlse = float64(tmxf), tl
		for j, t := range tz {
			lp := float64(t/temp) - tmx - tlse
			id := j
			if teacher.ids != nil {
				id = int(teacher.ids[j])
			}
			lq := float64(z[id]/temp-smx) - slse
			kl += math.Exp(lp) * (lp - lq)
		}
		kl *= float64(temp) * float64(temp)
	}
	if !backward {
		return ce, kl
	}
	full := distill && teacher.ids == nil
	for j, v := range z {
		g := float64(wce) * math.Exp(float64(v-mx)-lse)
		if distill {
			g += float64(wkl) * math.Exp(float64(v/temp-smx)-slse)
			if full {
				g -= float64(wkl) * math.Exp(float64(teacher.logits[j]/temp)-tmx-tlse)
			}
		}
		z[j] = float32(g)
	}
	z[target] -= wce
	if distill && !full {
		for j, t := range teacher.logits {
			z[teacher.ids[j]] -= float32(float64(wkl) * math.Exp(float64(t/temp)-tmx-tlse))
		}
	}
	return ce, kl
}

// scaledLSE is logSumExp of z/temp: the maximum of z/temp and
// log Σ exp(z/temp − max).
func scaledLSE(z []float32, temp float32) (float32, float64) {
	mx := z[0] / temp
	for _, v := range z[1:] {
		if v/temp > mx {
			mx = v / temp
		}
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v/temp - mx))
	}
	return mx, math.Log(s)
}

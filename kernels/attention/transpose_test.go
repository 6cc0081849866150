package attention

import "testing"

func TestTranspose(t *testing.T) {
	for _, rows := range []int{1, 3, 4, 9} {
		const cols, ld = 5, 7
		src := make([]float32, rows*ld)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, rows*cols)
		transpose(dst, src, rows, cols, ld)
		for j := range rows {
			for d := range cols {
				if got, want := dst[d*rows+j], src[j*ld+d]; got != want {
					t.Fatalf("rows %d: dst[%d][%d] = %g, want src[%d][%d] = %g", rows, d, j, got, j, d, want)
				}
			}
		}
	}
}

package transport

import "testing"

// GetBuffer always has room for what was asked, whatever PutBuffer was
// given before; buffers below poolMin are never pooled.
func TestBufferPool(t *testing.T) {
	for _, put := range []int{0, 100, poolMin - 1, poolMin, poolMin + 1, 3 * poolMin, poolMax, 4 * poolMax} {
		PutBuffer(make([]byte, 0, put))
		for _, n := range []int{0, 1, poolMin - 1, poolMin, poolMin + 1, 2*poolMin + 3, poolMax - 1, poolMax, poolMax + 1} {
			b := GetBuffer(n)
			if len(b) != 0 || cap(b) < n {
				t.Fatalf("after PutBuffer(cap %d): GetBuffer(%d) has len %d cap %d", put, n, len(b), cap(b))
			}
			if n < poolMin && cap(b) != n {
				t.Fatalf("GetBuffer(%d) below the pooled sizes has cap %d", n, cap(b))
			}
			PutBuffer(b[:n])
		}
	}
}

package event

import "unsafe"

// Record views a ring record as its generated record type T, without a
// copy: nil when raw is shorter than T. Every concern's decoder reads its
// records this way (the engine has already dispatched by the type byte).
// BPF ring buffer samples are 8-byte aligned and the generated types hold
// no Go pointers, so the view is safe while raw is (the reader's batch).
func Record[T any](raw []byte) *T {
	var zero T
	if len(raw) < int(unsafe.Sizeof(zero)) {
		return nil
	}
	return (*T)(unsafe.Pointer(unsafe.SliceData(raw)))
}

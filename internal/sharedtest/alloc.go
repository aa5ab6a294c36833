package sharedtest

import "runtime"

// BytesPerRun calls f(0) … f(runs-1) and returns the bytes the process
// allocated per call (runtime.MemStats' TotalAlloc, which counts every
// goroutine's allocations, so work f hands to others counts too).
func BytesPerRun(runs int, f func(i int)) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range runs {
		f(i)
	}
	runtime.ReadMemStats(&m1)
	return (m1.TotalAlloc - m0.TotalAlloc) / uint64(runs)
}

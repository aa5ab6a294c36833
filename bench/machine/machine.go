// Package machine describes the host a benchmark ran on, so numbers in
// bench/results can be compared only with numbers from like machines.
package machine

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Info is what the results files record about the host.
type Info struct {
	NProc     int
	CPUModel  string
	MemTotal  string // e.g. "23.5 GiB"
	GoVersion string
	Kernel    string
	LoadAvg   string // /proc/loadavg's 1, 5 and 15 minute averages
}

// Describe reads /proc and the Go toolchain; missing pieces are "unknown".
func Describe() Info {
	in := Info{NProc: runtime.NumCPU(), CPUModel: "unknown", MemTotal: "unknown", GoVersion: runtime.Version(),
		Kernel: "unknown", LoadAvg: LoadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				in.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					in.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		in.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		in.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	return in
}

// LoadAvg returns the 1, 5 and 15 minute load averages, or "unknown".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Markdown is the machine as a bullet list.
func (in Info) Markdown() string {
	return fmt.Sprintf("- CPU: %s, %d logical CPUs (nproc)\n- Memory: %s\n- Go: %s\n- Kernel: Linux %s\n- Load average at start (1/5/15 min): %s\n",
		in.CPUModel, in.NProc, in.MemTotal, in.GoVersion, in.Kernel, in.LoadAvg)
}

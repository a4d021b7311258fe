package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times (100 on Linux).
const clockTicks = 100

// Proc is one watched process (and its descendants, for Postgres backends
// and the Temporal dev server's children).
type Proc struct {
	Name string
	PID  int
}

// Memory is a process's resident memory, in MiB.
type Memory struct {
	RSS float64 `json:"rssMiB"` // VmRSS now
	HWM float64 `json:"hwmMiB"` // VmHWM: the peak since the process started
}

// readMemory reads VmRSS and VmHWM of pid (without descendants).
func readMemory(pid int) (Memory, bool) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return Memory{}, false
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[0], 64)
		switch k {
		case "VmRSS":
			m.RSS = round(kb/1024, 1)
		case "VmHWM":
			m.HWM = round(kb/1024, 1)
		}
	}
	return m, true
}

// procStat is what we need from /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  float64 // utime + stime + cutime + cstime, in seconds
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, false
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	var ticks float64
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseFloat(f[k], 64)
		ticks += v
	}
	st.cpu = ticks / clockTicks
	return st, true
}

// cpuSeconds returns the CPU time of every watched process with its
// descendants, and the whole machine's busy CPU seconds (from /proc/stat).
func cpuSeconds(procs []Proc) map[string]float64 {
	all := map[int]procStat{}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			all[pid] = st
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	roots := map[int]bool{}
	for _, p := range procs {
		roots[p.PID] = true
	}
	out := map[string]float64{}
	var ours float64
	for _, p := range procs {
		var sum float64
		stack := []int{p.PID}
		seen := map[int]bool{}
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[pid] || (pid != p.PID && roots[pid]) {
				continue // a watched child (the baseline worker under bench) counts for itself
			}
			seen[pid] = true
			sum += all[pid].cpu
			stack = append(stack, children[pid]...)
		}
		out[p.Name] += sum
		ours += sum
	}
	out["machine"], out["irq"] = machineCPU()
	out["ours"] = ours
	return out
}

// machineBusySeconds is the busy (non-idle, non-iowait) CPU time of the machine.
func machineBusySeconds() float64 {
	busy, _ := machineCPU()
	return busy
}

// machineCPU reads /proc/stat: the machine's busy CPU seconds and, of them,
// the time spent in interrupts (loopback networking mostly), which no process is charged.
func machineCPU() (busy, irq float64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	for i, v := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
		if i == 5 || i == 6 || i == 7 { // irq, softirq, steal
			irq += n
		}
	}
	return busy / clockTicks, irq / clockTicks
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSelf is the CPU time (user and system) this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go runs on).
const clockTick = 10 * time.Millisecond

// cpuOf is the CPU time (user and system) process pid has used, read from
// /proc/<pid>/stat.
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// follow start after its last ')'. utime and stime are fields 14 and
	// 15, the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// rssOf is the resident set of process pid now and its peak (VmRSS and
// VmHWM of /proc/<pid>/status), in bytes.
func rssOf(pid int) (now, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %q", pid, name, v)
		}
		if name == "VmRSS" {
			now = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
	}
	return now, peak, nil
}

// redisCPU is the CPU time the Redis server has used (INFO cpu: its main
// thread and its children), or 0 when Redis does not say.
func (r *Run) redisCPU(ctx context.Context) time.Duration {
	info, err := r.rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "used_cpu_sys", "used_cpu_user", "used_cpu_sys_children", "used_cpu_user_children":
			if s, err := strconv.ParseFloat(v, 64); err == nil {
				total += s
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

// cpuMeter measures the CPU time this process and Redis use between its
// start and a reading.
type cpuMeter struct {
	self, redis time.Duration
}

func (r *Run) startCPU(ctx context.Context) cpuMeter {
	return cpuMeter{self: cpuSelf(), redis: r.redisCPU(ctx)}
}

// used is the CPU time this process and Redis used since m started.
func (r *Run) used(ctx context.Context, m cpuMeter) (self, redis time.Duration) {
	return cpuSelf() - m.self, r.redisCPU(ctx) - m.redis
}

// perUnit is d per n units, in µs, as a table shows it.
func perUnit(d time.Duration, n int64) string {
	if n <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(d.Nanoseconds())/1e3/float64(n), 'f', 1, 64)
}

// mib is n bytes in MiB, as a table shows it.
func mib(n int64) string { return strconv.FormatInt((n+(1<<19))>>20, 10) + " MiB" }

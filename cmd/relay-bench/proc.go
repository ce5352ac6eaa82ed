package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a server process the benchmark started: the relay or the reference server.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *os.File // its standard error, kept in the temp dir
	done   chan struct{}
	err    error // set when done is closed

	mu      sync.Mutex
	samples []rssSample
	stopRSS chan struct{}
	rssDone chan struct{}
}

type rssSample struct {
	at  time.Duration // since the sampler started
	rss int64         // bytes
	// The machine at that moment, to tell the relay's stalls from its neighbours': busy CPU
	// time since boot, and the time some task waited for I/O (PSI) since boot.
	busy, ioWait time.Duration
}

// children are the processes alive, killed on the way out whatever happens.
var (
	childrenMu sync.Mutex
	children   = map[*child]bool{}
)

// startChild starts a server process with GOMAXPROCS set to gomaxprocs in its environment only
// (0: the machine's default, GOMAXPROCS removed from the environment), and extraEnv added.
func startChild(name, path string, args, extraEnv []string, gomaxprocs int, stderrPath string) (*child, error) {
	f, err := os.Create(stderrPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	if gomaxprocs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	env = append(env, extraEnv...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	// Its own process group, so that a Ctrl-C in the terminal reaches the benchmark only (which
	// then stops its children in order), and a death signal should the benchmark die abruptly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stderr: f, done: make(chan struct{})}
	childrenMu.Lock()
	children[c] = true
	childrenMu.Unlock()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady polls url until it answers 200, the process exits, or timeout passes.
func (c *child) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.exited() {
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", c.name, c.err, c.tail(20))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %s:\n%s", c.name, url, timeout, c.tail(20))
}

// stop sends SIGTERM and waits up to grace, then kills the process. It returns the exit error
// of a process that stopped on its own terms with a failure.
func (c *child) stop(grace time.Duration) error {
	defer func() {
		childrenMu.Lock()
		delete(children, c)
		childrenMu.Unlock()
		c.stderr.Close()
	}()
	if c.exited() {
		return c.err
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", c.name, grace)
	}
}

// killAll stops every child still alive (on an error path or an interrupt).
func killAll() {
	childrenMu.Lock()
	list := make([]*child, 0, len(children))
	for c := range children {
		list = append(list, c)
	}
	childrenMu.Unlock()
	for _, c := range list {
		_ = c.stop(10 * time.Second)
	}
}

// tail returns the last n lines the process wrote.
func (c *child) tail(n int) string {
	b, err := os.ReadFile(c.stderr.Name())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// startRSS samples VmRSS every interval until stopRSSSampler.
func (c *child) startRSS(interval time.Duration) {
	c.stopRSS = make(chan struct{})
	c.rssDone = make(chan struct{})
	start := time.Now()
	go func() {
		defer close(c.rssDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, err := procStatus(c.pid(), "VmRSS"); err == nil {
				smp := rssSample{at: time.Since(start), rss: v, busy: machineBusy(), ioWait: ioPressure()}
				c.mu.Lock()
				c.samples = append(c.samples, smp)
				c.mu.Unlock()
			}
			select {
			case <-c.stopRSS:
				return
			case <-c.done:
				return
			case <-t.C:
			}
		}
	}()
}

func (c *child) stopRSSSampler() []rssSample {
	if c.stopRSS == nil {
		return nil
	}
	close(c.stopRSS)
	<-c.rssDone
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rssSample(nil), c.samples...)
}

// lastRSS is the latest sample, 0 if none.
func (c *child) lastRSS() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) == 0 {
		return 0
	}
	return c.samples[len(c.samples)-1].rss
}

// procStatus reads one "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != field {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", field, v, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTime is the user and system CPU time a process has used so far, from /proc/<pid>/stat.
func cpuTime(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is parenthesised and may hold spaces: skip past its end.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15 (1-based).
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("malformed /proc stat times")
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut) * time.Second / clkTck, time.Duration(st) * time.Second / clkTck, nil
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// machineBusy is the CPU time the whole machine has spent busy (neither idle nor waiting for
// I/O) since boot, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time
		// is already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	const clkTck = 100
	return time.Duration(busy) * time.Second / clkTck
}

// ioPressure is the total time some task waited for I/O since boot, from /proc/pressure/io
// (0 where PSI is not available).
func ioPressure() time.Duration {
	b, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n") // "some avg10=... total=<µs>"
	_, total, ok := strings.Cut(line, "total=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Microsecond
}

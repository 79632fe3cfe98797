package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroup is a CPU accounting group for one server and all its descendants:
// cgroup v1 cpuacct where the machine mounts it, else cgroup v2.
type cgroup struct {
	dir string
	v2  bool
}

const cgroupName = "bootyard-bench"

func newCgroup(name string) (*cgroup, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup/cpuacct", cgroupName, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return &cgroup{dir: dir}, nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup", cgroupName, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return &cgroup{dir: dir, v2: true}, nil
	}
	return nil, errors.New("no cgroup cpu accounting")
}

func (c *cgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// usage is the CPU time of every process that was ever in the group.
func (c *cgroup) usage() (time.Duration, error) {
	if !c.v2 {
		b, err := os.ReadFile(filepath.Join(c.dir, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns), err
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec", c.dir)
}

func (c *cgroup) remove() error {
	err := os.Remove(c.dir)
	_ = os.Remove(filepath.Dir(c.dir)) // the parent, once empty
	return err
}

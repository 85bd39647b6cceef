package main

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// This file times the request/response exchanges of the data path section:
// a client of blocking system calls on a thread pinned to one CPU, the one
// the echo server of startEcho runs on.

// requestResponse times 1-byte exchanges on one TCP connection from the
// client's namespace to the echo server (Ctr to Inet in the data path
// section), after 100 untimed ones, and returns the round trips
// in microseconds. The client uses blocking system calls on a thread pinned
// to b.cpu, like the server.
func (b *dpBench) requestResponse() ([]float64, error) {
	ends := b.ends.or(b.tp)
	var fd int
	if err := ends.client.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("request/response: socket in %s: %w", ends.client.Name, err)
	}
	defer unix.Close(fd)
	// No call blocks for longer than 5 s, whatever the filter does.
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return nil, err
	}
	dst := &unix.SockaddrInet4{Port: ends.echoPort, Addr: netip.MustParseAddr(ends.dial).As4()}
	if err := unix.Connect(fd, dst); err != nil {
		return nil, fmt.Errorf("request/response: connect: %w", err)
	}
	type result struct {
		rtts []float64
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked: it is pinned, and ends with the goroutine.
		runtime.LockOSThread()
		if err := dpPin(b.cpu); err != nil {
			ch <- result{err: err}
			return
		}
		rtts, err := dpExchanges(fd, b.p.exchanges, b.p.rrLimit)
		ch <- result{rtts, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("request/response: %w", r.err)
	}
	return r.rtts, nil
}

// dpExchanges sends one byte on fd and reads one back, 100 times untimed
// and then up to n times or until limit has passed, and returns the timed
// round trips in microseconds.
func dpExchanges(fd, n int, limit time.Duration) ([]float64, error) {
	buf := []byte{'x'}
	rtts := make([]float64, 0, n)
	stop := time.Now().Add(limit)
	for i := -100; i < n; i++ {
		t0 := time.Now()
		if _, err := unix.Write(fd, buf); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		for {
			m, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read: %w", err)
			}
			if m != 1 {
				return nil, errors.New("read: the echo server closed the connection")
			}
			break
		}
		if i < 0 {
			continue
		}
		now := time.Now()
		rtts = append(rtts, float64(now.Sub(t0).Nanoseconds())/1e3)
		if now.After(stop) {
			break
		}
	}
	return rtts, nil
}

// dpPin pins the calling thread to cpu.
func dpPin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin the thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// dpLastCPU returns the highest CPU this process may run on.
func dpLastCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	last := 0
	for c := range 1024 {
		if set.IsSet(c) {
			last = c
		}
	}
	return last
}

package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// CharDevice is the real guest end of a virtio-serial port (/dev/virtio-ports/NAME). It is opened
// non-blocking (reads wait in Go's poller, so Close interrupts them), with O_ASYNC so the kernel sends
// SIGIO when the host connects or disconnects.
type CharDevice struct {
	path string

	once    sync.Once
	changes chan struct{}
}

// NewCharDevice returns the device at path; nothing is opened yet.
func NewCharDevice(path string) *CharDevice { return &CharDevice{path: path} }

// Name is the device path.
func (d *CharDevice) Name() string { return d.path }

// Changes receives a value on every SIGIO the process gets (host connect/disconnect).
func (d *CharDevice) Changes() <-chan struct{} {
	d.once.Do(func() {
		sig := make(chan os.Signal, 1)
		d.changes = make(chan struct{}, 1)
		signal.Notify(sig, syscall.SIGIO)
		go func() {
			for range sig {
				select {
				case d.changes <- struct{}{}:
				default:
				}
			}
		}()
	})
	return d.changes
}

// Open opens the port.
func (d *CharDevice) Open() (Port, error) {
	fd, err := unix.Open(d.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	d.Changes()
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_ASYNC)
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETOWN, os.Getpid())
	}
	return &charPort{f: os.NewFile(uintptr(fd), d.path)}, nil
}

type charPort struct{ f *os.File }

func (p *charPort) Read(b []byte) (int, error)  { return p.f.Read(b) }
func (p *charPort) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p *charPort) Close() error {
	if err := p.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// HostConnected polls the port without blocking: the kernel sets POLLHUP while no host is connected.
func (p *charPort) HostConnected() (bool, error) {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return false, err
	}
	var revents int16
	var perr error
	if err := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT}}
		_, perr = unix.Poll(fds, 0)
		revents = fds[0].Revents
	}); err != nil {
		return false, err
	}
	if perr != nil && !errors.Is(perr, unix.EINTR) {
		return false, fmt.Errorf("poll %s: %w", p.f.Name(), perr)
	}
	if revents&unix.POLLHUP != 0 {
		// An unplugged port also polls POLLHUP, forever: only its device node tells it apart.
		if gone, why := portGone(p.f); gone {
			return false, fmt.Errorf("%s: %w (%s)", p.f.Name(), ErrPortGone, why)
		}
	}
	return revents&unix.POLLHUP == 0 && perr == nil, nil
}

// ErrPortGone: the opened port was hot-unplugged (or replaced by a new one at the same path); the
// listener reopens the path.
var ErrPortGone = errors.New("virtio-serial port was unplugged")

// portGone reports whether f's path no longer names the file f has open: removed, or a new node
// (the host detached the channel and maybe attached it again: `kvmnetctl guests enable-channel`
// hot-plugs a fresh port, seen in the lab). The reason is for logs.
func portGone(f *os.File) (bool, string) {
	var open, now unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		return false, ""
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &open) }); err != nil || serr != nil {
		return false, ""
	}
	if err := unix.Stat(f.Name(), &now); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, "device node removed"
		}
		return false, ""
	}
	if now.Dev != open.Dev || now.Ino != open.Ino || now.Rdev != open.Rdev {
		return true, "device node replaced"
	}
	return false, ""
}

// ListenSerial returns a SerialListener on the character device at path (ErrNoDevice when absent).
func ListenSerial(path string, log *slog.Logger) (*SerialListener, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("transport: %s: %w (add a <channel type='unix'> with target name org.kvmnet.agent.0 to the domain, or run `kvmnetctl guests enable-channel`)", path, ErrNoDevice)
		}
		return nil, fmt.Errorf("transport: %s: %w", path, err)
	}
	return NewSerialListener(NewCharDevice(path), SerialOptions{Logger: log}), nil
}

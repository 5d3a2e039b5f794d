package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// ServeHTTP serves HTTP 200 "ok" on addr (e.g. "10.88.0.1:80") inside ns until the test ends: the
// "internet" a guest's TCP and HTTP egress checks reach. The socket is opened on a thread that
// entered ns and then returned to its own namespace; only if that return fails is the thread kept
// locked and discarded, so no other goroutine ever runs in the wrong namespace.
func (ns *Netns) ServeHTTP(addr string) {
	ns.t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("read own namespace: %w", err)}
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open namespace %s: %w", ns.Name, err)}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", ns.Name, err)}
			return
		}
		l, err := net.Listen("tcp", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{l: l, err: err}
	}()
	r := <-ch
	if r.err != nil {
		ns.t.Fatalf("serve HTTP on %s in %s: %v", addr, ns.Name, r.err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = srv.Serve(r.l) }()
	ns.t.Cleanup(func() { _ = srv.Close() })
}

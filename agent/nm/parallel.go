package nm

import "sync"

// maxInFlight bounds the D-Bus calls one read (State, Devices) keeps in flight at once. godbus
// multiplexes calls on the one connection; overlapping them saves a round trip through the bus
// daemon and NetworkManager per object instead of waiting for each answer before asking the next.
const maxInFlight = 8

// parallel runs f(0..n-1) with at most maxInFlight at a time and returns the errors by index, so
// callers decide in the same order a sequential loop would have.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	if n == 0 {
		return errs
	}
	if n == 1 {
		errs[0] = f(0)
		return errs
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

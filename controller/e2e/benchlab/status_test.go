//go:build lab

package benchlab

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// statusReport is the part of `kvmnetctl guests status -o json` (the README's contract) checked here.
type statusReport struct {
	Guests []struct {
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
		Agent   struct {
			Transport string `json:"transport"`
			Reachable bool   `json:"reachable"`
		} `json:"agent"`
	} `json:"guests"`
}

// domainChannels is the part of `virsh dumpxml` that says whether QEMU has a host client on a channel.
type domainChannels struct {
	Channels []struct {
		Target struct {
			Name  string `xml:"name,attr"`
			State string `xml:"state,attr"`
		} `xml:"target"`
	} `xml:"devices>channel"`
}

// channelState is libvirt's state of the guest's org.kvmnet.agent.0 channel: "connected" once the
// agent in the guest has its port open, "disconnected" while it reopens it after a host session.
func channelState(ctx context.Context, uri, vm string) (string, error) {
	out, err := exec.CommandContext(ctx, "virsh", "-q", "-c", uri, "dumpxml", vm).Output()
	if err != nil {
		return "", fmt.Errorf("virsh dumpxml %s: %w", vm, err)
	}
	var d domainChannels
	if err := xml.Unmarshal(out, &d); err != nil {
		return "", fmt.Errorf("virsh dumpxml %s: %w", vm, err)
	}
	for _, ch := range d.Channels {
		if ch.Target.Name == "org.kvmnet.agent.0" {
			return ch.Target.State, nil
		}
	}
	return "", fmt.Errorf("guest %s has no org.kvmnet.agent.0 channel", vm)
}

// waitConnected polls the channel state every 50 ms until it is connected (or 30 s pass).
func waitConnected(ctx context.Context, uri, vm string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, err := channelState(ctx, uri, vm)
		if err == nil && st == "connected" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("channel org.kvmnet.agent.0 of %s not connected after 30 s (state %q, %v)", vm, st, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BenchmarkLabStatusCLI times the whole CLI path for one lab guest: one `kvmnetctl -c URI guests status
// -o json VM` process per iteration (process start, libvirt enumeration, dial over the real
// virtio-serial channel with the resync handshake, GetState + RunChecks with the default checks run
// in the guest, diagnosis, JSON). Before each timed run it waits, untimed, until libvirt shows the
// agent's port connected again: the agent closes and reopens its port after every host session, and a
// user's single `guests status` finds it open; that wait is reported as reopen-p50-ms. The guest must
// be reported reachable on every run; exit 1 (error-level findings) is accepted and counted.
func BenchmarkLabStatusCLI(b *testing.B) {
	ctl, uri, vm := env(b, "KVMNETCTL"), env(b, "KVMNET_LAB_URI"), env(b, "KVMNET_LAB_BENCH_VM")
	ctx := context.Background()
	run := func() (statusReport, time.Duration, error) {
		var so, se bytes.Buffer
		cmd := exec.CommandContext(ctx, ctl, "-c", uri, "guests", "status", "-o", "json", vm)
		cmd.Stdout, cmd.Stderr = &so, &se
		t0 := time.Now()
		err := cmd.Run()
		took := time.Since(t0)
		var rep statusReport
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			return rep, took, fmt.Errorf("%s guests status %s: %v\n%s", ctl, vm, err, se.String())
		}
		if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
			return rep, took, fmt.Errorf("guests status output is not the JSON contract: %v\n%s", err, so.String())
		}
		if len(rep.Guests) != 1 || rep.Guests[0].Name != vm || !rep.Guests[0].Agent.Reachable {
			return rep, took, fmt.Errorf("guest %s not reported reachable: %s\nstderr: %s", vm, so.String(), se.String())
		}
		return rep, took, nil
	}
	var walls, reopens []time.Duration
	unhealthy := 0
	for i := range b.N {
		b.StopTimer()
		t0 := time.Now()
		if err := waitConnected(ctx, uri, vm); err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			reopens = append(reopens, time.Since(t0))
		}
		b.StartTimer()
		rep, took, err := run()
		if err != nil {
			b.Fatalf("run %d: %v", i, err)
		}
		walls = append(walls, took)
		if !rep.Guests[0].Healthy {
			unhealthy++
		}
	}
	b.StopTimer()
	summarise(walls).report(b, "ms")
	if len(reopens) > 0 {
		b.ReportMetric(float64(summarise(reopens).p50.Nanoseconds())/1e6, "reopen-p50-ms")
	}
	b.ReportMetric(float64(unhealthy), "unhealthy-runs")
	b.ReportMetric(float64(len(walls)), "runs")
}

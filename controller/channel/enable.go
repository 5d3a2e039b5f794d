package channel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Domains is what Enable and FixExposed need from libvirt; controller/libvirt's connection provides
// it (an adapter in the CLI maps the names), tests use a fake or a private libvirtd.
type Domains interface {
	// PersistentXML returns the domain's persistent definition with its secrets
	// (VIR_DOMAIN_XML_INACTIVE|VIR_DOMAIN_XML_SECURE), so redefining it loses nothing.
	PersistentXML(ctx context.Context, name string) (string, error)
	// LiveXML returns the running domain's XML, or "" (and no error) when it is not running.
	LiveXML(ctx context.Context, name string) (string, error)
	// DefineXML (re)defines the persistent domain from XML.
	DefineXML(ctx context.Context, xml string) error
	// AttachDeviceLive hot-plugs a device into the running domain only (VIR_DOMAIN_AFFECT_LIVE).
	AttachDeviceLive(ctx context.Context, name, deviceXML string) error
}

// PrepareFunc makes the channel directory ready (PrepareDir with QEMU's identity filled in). nil
// means it cannot be done from here (remote libvirt): the result then says what to run on the host.
type PrepareFunc func(dir string) (DirResult, error)

// Live outcomes of a change.
const (
	// LiveNotRunning: the domain is shut off; the change applies when it next starts.
	LiveNotRunning = "not-running"
	// LiveHotplugged: the channel was attached to the running domain as well.
	LiveHotplugged = "hot-plugged"
	// LiveNextBoot: the running domain keeps its old devices until it is shut down and started again.
	LiveNextBoot = "next-boot"
	// LiveUnchanged: nothing changed.
	LiveUnchanged = "unchanged"
)

// Result is what happened to one domain.
type Result struct {
	// Domain name.
	Domain string `json:"domain"`
	// Path of the kvmnet channel socket after the change.
	Path string `json:"path,omitempty"`
	// Changes made to the persistent XML.
	Changes []Change `json:"changes,omitempty"`
	// Diff of the persistent XML (unified, secrets redacted); "" when unchanged.
	Diff string `json:"diff,omitempty"`
	// Applied is true when the persistent XML was redefined.
	Applied bool `json:"applied"`
	// Declined is true when the user answered no to the confirmation.
	Declined bool `json:"declined,omitempty"`
	// Live is one of the Live* constants.
	Live string `json:"live"`
	// Dir is what PrepareDir did (nil when skipped).
	Dir *DirResult `json:"dir,omitempty"`
	// Message explains, for people, what changed and when it takes effect.
	Message string `json:"message"`
	// Evidence, key=value words.
	Evidence string `json:"evidence"`
}

// EnableOptions configure Enable.
type EnableOptions struct {
	// Dir holds the channel sockets. Default DefaultDir.
	Dir string
	// Vsock also adds a vsock device with an automatic CID.
	Vsock bool
	// DryRun computes and shows the change without defining anything or touching the directory.
	DryRun bool
	// Prepare makes the directory; nil when libvirt is remote.
	Prepare PrepareFunc
}

// Enable gives a domain the kvmnet channel at the safe path (adding it, or moving an existing one),
// optionally a vsock device, in its persistent XML; hot-plugs a newly added channel into a running
// domain when libvirt accepts it (libvirt 9.0 needs a virtio-serial controller already in the running
// domain: it cannot hot-plug one). Running it again changes nothing.
func Enable(ctx context.Context, d Domains, name string, o EnableOptions) (Result, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	res := Result{Domain: name}
	cur, err := d.PersistentXML(ctx, name)
	if err != nil {
		return res, fmt.Errorf("enable-channel %s: %w", name, err)
	}
	ed, err := PlanChannel(cur, PlanOptions{Dir: o.Dir, AddIfMissing: true, Vsock: o.Vsock})
	if err != nil {
		return res, fmt.Errorf("enable-channel %s: %w", name, err)
	}
	res.Path, res.Changes = ed.Path, ed.Changes
	res.Diff = Diff(ed.Old, ed.New, name+" (persistent, before)", name+" (persistent, after)")
	ev := []string{ed.Evidence}
	live, err := d.LiveXML(ctx, name)
	if err != nil {
		return res, fmt.Errorf("enable-channel %s: %w", name, err)
	}
	if o.DryRun {
		res.Live = LiveUnchanged
		res.Message = "dry run: nothing changed"
		res.Evidence = strings.Join(append(ev, "dry_run=yes"), " ")
		return res, nil
	}
	if err := prepare(&res, o.Prepare, o.Dir); err != nil {
		return res, fmt.Errorf("enable-channel %s: %w", name, err)
	}
	if !ed.Changed() {
		res.Live = LiveUnchanged
		res.Message = fmt.Sprintf("%s already has the kvmnet channel at %s: nothing to do", name, ed.Path)
		if live != "" {
			if lp := livePath(live); lp != ed.Path {
				res.Live = LiveNextBoot
				res.Message = fmt.Sprintf("%s's persistent definition already has the channel at %s, but the running "+
					"domain still uses %s: shut it down and start it again (a reboot inside the guest is not enough)",
					name, ed.Path, orAuto(lp))
			}
		}
		res.Evidence = strings.Join(append(ev, "live="+res.Live), " ")
		return res, nil
	}
	if err := d.DefineXML(ctx, ed.New); err != nil {
		return res, fmt.Errorf("enable-channel %s: define the new XML: %w", name, err)
	}
	res.Applied = true
	added := false
	for _, c := range ed.Changes {
		added = added || c.Kind == "add-channel"
	}
	var parts []string
	switch {
	case live == "":
		res.Live = LiveNotRunning
		parts = append(parts, fmt.Sprintf("%s is shut off: the change takes effect when it next starts", name))
	case added && !hasLiveChannel(live):
		err := d.AttachDeviceLive(ctx, name, ChannelXML(ed.Path))
		if err != nil {
			res.Live = LiveNextBoot
			ev = append(ev, "hotplug=failed")
			parts = append(parts, fmt.Sprintf("the running domain did not accept the channel live (%v): it takes "+
				"effect after %s is shut down and started again (a reboot inside the guest is not enough)", err, name))
		} else {
			res.Live = LiveHotplugged
			ev = append(ev, "hotplug=ok")
			parts = append(parts, "the channel was hot-plugged: the guest sees /dev/virtio-ports/"+
				snapshot.ChannelKvmnet+" now and kvmnet-agent starts by itself (udev)")
		}
	default:
		res.Live = LiveNextBoot
		parts = append(parts, fmt.Sprintf("the running domain keeps its current devices: the change takes effect "+
			"after %s is shut down and started again (a reboot inside the guest is not enough)", name))
	}
	for _, c := range ed.Changes {
		if c.Kind == "add-vsock" && res.Live == LiveHotplugged {
			parts = append(parts, "the vsock device takes effect at the next start")
		}
	}
	if o.Prepare == nil {
		parts = append(parts, remoteDirHint(o.Dir))
	}
	res.Message = fmt.Sprintf("%s: kvmnet channel at %s; %s", name, ed.Path, strings.Join(parts, "; "))
	res.Evidence = strings.Join(append(ev, "live="+res.Live), " ")
	return res, nil
}

// Confirm asks whether to apply diff to domain; it returns false to skip that domain.
type Confirm func(domain, diff string) (bool, error)

// FixOptions configure FixExposed.
type FixOptions struct {
	// Dir holds the channel sockets. Default DefaultDir.
	Dir string
	// Yes applies without asking.
	Yes bool
	// Confirm asks before each change unless Yes (required when Yes is false).
	Confirm Confirm
	// Prepare makes the directory; nil when libvirt is remote.
	Prepare PrepareFunc
}

// FixExposed is the repair behind `kvmnetctl host fix --only channel_socket_exposed`: for each named
// domain it moves the existing kvmnet channel of the persistent XML into the safe directory (never
// adding one), after showing the diff and asking unless Yes. Running domains keep the old socket until
// they are shut down and started again; the result says so. Errors of one domain do not stop the
// others; they are joined in the returned error.
func FixExposed(ctx context.Context, d Domains, names []string, o FixOptions) ([]Result, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if !o.Yes && o.Confirm == nil {
		return nil, errors.New("channel fix: no confirmation prompt and --yes not given")
	}
	var out []Result
	var errs []error
	prepared := false
	for _, name := range names {
		res := Result{Domain: name}
		cur, err := d.PersistentXML(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("channel fix %s: %w", name, err))
			continue
		}
		ed, err := PlanChannel(cur, PlanOptions{Dir: o.Dir})
		if err != nil {
			errs = append(errs, fmt.Errorf("channel fix %s: %w", name, err))
			continue
		}
		res.Path, res.Changes = ed.Path, ed.Changes
		res.Diff = Diff(ed.Old, ed.New, name+" (persistent, before)", name+" (persistent, after)")
		live, err := d.LiveXML(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("channel fix %s: %w", name, err))
			continue
		}
		ev := []string{ed.Evidence}
		if !ed.Changed() {
			res.Live = LiveUnchanged
			switch {
			case ed.Path == "":
				res.Message = fmt.Sprintf("%s has no kvmnet channel: nothing to move", name)
			case live != "" && livePath(live) != ed.Path:
				res.Live = LiveNextBoot
				res.Message = fmt.Sprintf("%s's persistent definition already uses %s; the running domain still uses "+
					"%s until it is shut down and started again", name, ed.Path, orAuto(livePath(live)))
			default:
				res.Message = fmt.Sprintf("%s's channel is already at %s", name, ed.Path)
			}
			res.Evidence = strings.Join(append(ev, "live="+res.Live), " ")
			out = append(out, res)
			continue
		}
		if !o.Yes {
			ok, err := o.Confirm(name, res.Diff)
			if err != nil {
				errs = append(errs, fmt.Errorf("channel fix %s: %w", name, err))
				continue
			}
			if !ok {
				res.Declined = true
				res.Live = LiveUnchanged
				res.Message = fmt.Sprintf("%s: skipped (not confirmed)", name)
				res.Evidence = strings.Join(append(ev, "confirmed=no"), " ")
				out = append(out, res)
				continue
			}
		}
		if !prepared {
			if err := prepare(&res, o.Prepare, o.Dir); err != nil {
				return out, errors.Join(append(errs, fmt.Errorf("channel fix: %w", err))...)
			}
			prepared = true
		}
		if err := d.DefineXML(ctx, ed.New); err != nil {
			errs = append(errs, fmt.Errorf("channel fix %s: define the new XML: %w", name, err))
			continue
		}
		res.Applied = true
		if live == "" {
			res.Live = LiveNotRunning
			res.Message = fmt.Sprintf("%s: channel moved to %s; takes effect when the domain next starts", name, ed.Path)
		} else {
			res.Live = LiveNextBoot
			res.Message = fmt.Sprintf("%s: channel moved to %s in the persistent definition; the running domain keeps "+
				"the exposed socket %s until it is shut down and started again (a reboot inside the guest is not "+
				"enough)", name, ed.Path, orAuto(livePath(live)))
		}
		if o.Prepare == nil {
			res.Message += "; " + remoteDirHint(o.Dir)
		}
		res.Evidence = strings.Join(append(ev, "live="+res.Live), " ")
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

func remoteDirHint(dir string) string {
	return "libvirt is remote: on its host, create " + dir + " (mode 0700, owned by the user QEMU runs as) before " +
		"the domain starts, e.g. by installing kvmnetctl there and running this command on the host"
}

func prepare(res *Result, p PrepareFunc, dir string) error {
	if p == nil {
		return nil
	}
	dr, err := p(dir)
	if err != nil {
		return err
	}
	res.Dir = &dr
	return nil
}

// livePath returns the socket path of the kvmnet channel in a live XML ("" when none or unparsable).
func livePath(live string) string {
	doc, err := parseDomain(live)
	if err != nil {
		return ""
	}
	for _, c := range doc.channels {
		if c.target != nil && c.target.attrs["name"] == snapshot.ChannelKvmnet && c.source != nil {
			return c.source.attrs["path"]
		}
	}
	return ""
}

func hasLiveChannel(live string) bool {
	doc, err := parseDomain(live)
	if err != nil {
		return false
	}
	for _, c := range doc.channels {
		if c.target != nil && c.target.attrs["name"] == snapshot.ChannelKvmnet {
			return true
		}
	}
	return false
}

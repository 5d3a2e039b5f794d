package channel

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// DefaultDir is where kvmnet puts channel sockets on the host.
const DefaultDir = "/var/lib/kvmnet/channels"

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path is 108 bytes with NUL).
const maxSocketPath = 107

// span is a byte range [start, end) of the XML text.
type span struct{ start, end int }

// element is one element found in the XML, with the spans of its start tag and the whole element.
type element struct {
	name  string
	attrs map[string]string
	tag   span // the start tag (the whole element when self-closing)
	whole span
}

// domainDoc is what PlanChannel needs to know about a domain XML text.
type domainDoc struct {
	name, uuid string
	devices    span // the <devices> element
	devicesEnd int  // offset of "</devices>"
	channels   []channelEl
	hasVsock   bool
}

type channelEl struct {
	el     element
	source *element
	target *element
}

// parseDomain walks the XML once and records offsets. It uses the decoder's input offsets, so the
// text can be edited without re-serialising (which would reorder attributes and drop formatting).
func parseDomain(text string) (domainDoc, error) {
	var doc domainDoc
	dec := xml.NewDecoder(strings.NewReader(text))
	dec.Strict = true
	var stack []string
	var cur *channelEl
	var textBuf strings.Builder
	devicesStart := -1
	for {
		start := int(dec.InputOffset())
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return doc, fmt.Errorf("domain XML: %w", err)
		}
		end := int(dec.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			path := strings.Join(append(stack, t.Name.Local), "/")
			attrs := map[string]string{}
			for _, a := range t.Attr {
				attrs[a.Name.Local] = a.Value
			}
			selfClosing := strings.HasSuffix(strings.TrimSpace(text[start:end]), "/>")
			el := element{name: t.Name.Local, attrs: attrs, tag: span{start, end}, whole: span{start, end}}
			switch path {
			case "domain/devices":
				devicesStart = start
			case "domain/devices/channel":
				cur = &channelEl{el: el}
			case "domain/devices/channel/source":
				if cur != nil && cur.source == nil {
					e := el
					cur.source = &e
				}
			case "domain/devices/channel/target":
				if cur != nil && cur.target == nil {
					e := el
					cur.target = &e
				}
			case "domain/devices/vsock":
				doc.hasVsock = true
			}
			textBuf.Reset()
			// RawToken reports a self-closing tag as a start and an end token; both are at "end".
			stack = append(stack, t.Name.Local)
			if selfClosing {
				if cur != nil && path == "domain/devices/channel" {
					cur.el.whole = span{start, end}
					doc.channels = append(doc.channels, *cur)
					cur = nil
				}
			}
		case xml.EndElement:
			if len(stack) == 0 {
				return doc, fmt.Errorf("domain XML: unbalanced </%s>", t.Name.Local)
			}
			path := strings.Join(stack, "/")
			stack = stack[:len(stack)-1]
			switch path {
			case "domain/name":
				doc.name = strings.TrimSpace(textBuf.String())
			case "domain/uuid":
				doc.uuid = strings.TrimSpace(textBuf.String())
			case "domain/devices":
				if start != end { // not the synthetic end of a self-closing <devices/>
					doc.devicesEnd = start
				}
				doc.devices = span{devicesStart, end}
			case "domain/devices/channel/source":
				if cur != nil && cur.source != nil && start != end && cur.source.whole.end < end {
					cur.source.whole.end = end
				}
			case "domain/devices/channel":
				if cur != nil {
					cur.el.whole.end = end
					doc.channels = append(doc.channels, *cur)
					cur = nil
				}
			}
		case xml.CharData:
			textBuf.Write(t)
		}
	}
	if len(stack) != 0 {
		return doc, fmt.Errorf("domain XML: unclosed <%s>", stack[len(stack)-1])
	}
	if doc.name == "" {
		return doc, fmt.Errorf("domain XML: no <name> (is this a libvirt domain?)")
	}
	if devicesStart < 0 {
		return doc, fmt.Errorf("domain XML of %s: no <devices>", doc.name)
	}
	if doc.devicesEnd == 0 {
		return doc, fmt.Errorf("domain XML of %s: <devices/> is empty and self-closing; add any device first", doc.name)
	}
	return doc, nil
}

// SocketPath is where the channel socket of a domain goes: DIR/NAME.agent.0, or DIR/UUID.agent.0 when
// the name would make the path too long for a unix socket (or contains a path separator).
func SocketPath(dir, name, uuid string) string {
	p := filepath.Join(dir, name+".agent.0")
	if len(p) > maxSocketPath || strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
		p = filepath.Join(dir, uuid+".agent.0")
	}
	return p
}

// Change is one edit PlanChannel made.
type Change struct {
	// Kind is "add-channel", "move-channel" or "add-vsock".
	Kind string `json:"kind"`
	// From is the previous socket path of a moved channel ("" when libvirt chose it automatically).
	From string `json:"from,omitempty"`
	// To is the new socket path.
	To string `json:"to,omitempty"`
}

// Edit is the result of PlanChannel.
type Edit struct {
	// Domain name and UUID, from the XML.
	Domain string `json:"domain"`
	// UUID of the domain.
	UUID string `json:"uuid"`
	// Path the kvmnet channel socket has after the edit ("" when the domain has no channel and none
	// was added).
	Path string `json:"path,omitempty"`
	// Old and New XML.
	Old string `json:"-"`
	// New XML (equal to Old when nothing changed).
	New string `json:"-"`
	// Changes made, in order.
	Changes []Change `json:"changes,omitempty"`
	// Evidence, key=value words.
	Evidence string `json:"evidence"`
}

// Changed reports whether the XML changed.
func (e Edit) Changed() bool { return len(e.Changes) > 0 }

// PlanOptions say what PlanChannel should make true.
type PlanOptions struct {
	// Dir holds the channel sockets. Default DefaultDir.
	Dir string
	// AddIfMissing adds the channel when the domain has none (enable-channel); false only moves an
	// existing one (host fix).
	AddIfMissing bool
	// Vsock adds <vsock model='virtio'><cid auto='yes'/></vsock> when the domain has no vsock device.
	Vsock bool
}

// PlanChannel edits a domain's persistent XML so that its kvmnet channel is a unix socket bound at
// SocketPath(opts.Dir, ...): it adds the channel (AddIfMissing), or sets the <source> of an existing
// one that lives elsewhere (libvirt's automatic path, or any other path), keeping its <address>. It
// is idempotent: a domain already in that state comes back unchanged.
func PlanChannel(domainXML string, opts PlanOptions) (Edit, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if !filepath.IsAbs(opts.Dir) {
		return Edit{}, fmt.Errorf("channel directory %q must be an absolute path", opts.Dir)
	}
	doc, err := parseDomain(domainXML)
	if err != nil {
		return Edit{}, err
	}
	want := SocketPath(opts.Dir, doc.name, doc.uuid)
	if len(want) > maxSocketPath {
		return Edit{}, fmt.Errorf("domain %s: socket path %s is longer than %d bytes; use a shorter --dir",
			doc.name, want, maxSocketPath)
	}
	ed := Edit{Domain: doc.name, UUID: doc.uuid, Old: domainXML, New: domainXML}
	var mine []channelEl
	for _, c := range doc.channels {
		if c.target != nil && c.target.attrs["name"] == snapshot.ChannelKvmnet {
			mine = append(mine, c)
		}
	}
	if len(mine) > 1 {
		return Edit{}, fmt.Errorf("domain %s has %d channels named %s; remove all but one (virsh edit %s)",
			doc.name, len(mine), snapshot.ChannelKvmnet, doc.name)
	}
	// Edits are applied back to front so earlier offsets stay valid.
	type repl struct {
		at   span
		text string
	}
	var repls []repl
	ev := []string{"domain=" + doc.name, "want=" + want}
	switch {
	case len(mine) == 1:
		c := mine[0]
		ed.Path = want
		typ := c.el.attrs["type"]
		var from, mode string
		if c.source != nil {
			from, mode = c.source.attrs["path"], c.source.attrs["mode"]
		}
		ev = append(ev, "have=type:"+typ+",path:"+orAuto(from))
		if typ == "unix" && from == want && (mode == "bind" || mode == "") {
			ev = append(ev, "action=none")
			break
		}
		indent := lineIndent(domainXML, c.el.tag.start)
		childIndent := indent + detectStep(domainXML, doc)
		src := "<source mode='bind' path='" + escapeAttr(want) + "'/>"
		if typ != "unix" {
			// A pty/file/... channel: rewrite the whole element, keeping the target and address lines.
			repls = append(repls, repl{c.el.tag, "<channel type='unix'>"})
		}
		switch {
		case c.source != nil && mode == "connect":
			return Edit{}, fmt.Errorf("domain %s: channel %s is in connect mode (QEMU connects to %s, served by "+
				"someone else); kvmnet needs mode='bind': remove it (virsh edit %s) and run enable-channel again",
				doc.name, snapshot.ChannelKvmnet, from, doc.name)
		case c.source != nil && c.source.tag == c.source.whole:
			repls = append(repls, repl{c.source.whole, src})
		case c.source != nil:
			// <source ...>children</source>: replace the start tag only, keeping e.g. <seclabel>.
			repls = append(repls, repl{c.source.tag, strings.TrimSuffix(src, "/>") + ">"})
		default:
			repls = append(repls, repl{span{c.el.tag.end, c.el.tag.end}, "\n" + childIndent + src})
		}
		ed.Changes = append(ed.Changes, Change{Kind: "move-channel", From: from, To: want})
		ev = append(ev, "action=move")
	case opts.AddIfMissing:
		ed.Path = want
		step := detectStep(domainXML, doc)
		closeIndent := lineIndent(domainXML, doc.devicesEnd)
		ind := closeIndent + step
		block := ind + "<channel type='unix'>\n" +
			ind + step + "<source mode='bind' path='" + escapeAttr(want) + "'/>\n" +
			ind + step + "<target type='virtio' name='" + snapshot.ChannelKvmnet + "'/>\n" +
			ind + "</channel>\n"
		repls = append(repls, repl{span{lineStart(domainXML, doc.devicesEnd), lineStart(domainXML, doc.devicesEnd)}, block})
		ed.Changes = append(ed.Changes, Change{Kind: "add-channel", To: want})
		ev = append(ev, "have=none", "action=add")
	default:
		ev = append(ev, "have=none", "action=none")
	}
	if opts.Vsock {
		if doc.hasVsock {
			ev = append(ev, "vsock=present")
		} else {
			step := detectStep(domainXML, doc)
			ind := lineIndent(domainXML, doc.devicesEnd) + step
			block := ind + "<vsock model='virtio'>\n" + ind + step + "<cid auto='yes'/>\n" + ind + "</vsock>\n"
			at := lineStart(domainXML, doc.devicesEnd)
			repls = append(repls, repl{span{at, at}, block})
			ed.Changes = append(ed.Changes, Change{Kind: "add-vsock"})
			ev = append(ev, "vsock=add")
		}
	}
	// Apply back to front; insertions at the same offset keep their listed order.
	sort.SliceStable(repls, func(i, j int) bool { return repls[i].at.start < repls[j].at.start })
	out := domainXML
	for i := len(repls) - 1; i >= 0; i-- {
		r := repls[i]
		out = out[:r.at.start] + r.text + out[r.at.end:]
	}
	ed.New = out
	ed.Evidence = strings.Join(ev, " ")
	return ed, nil
}

// ChannelXML is the device XML of the kvmnet channel at path, for a live attach.
func ChannelXML(path string) string {
	return "<channel type='unix'>\n  <source mode='bind' path='" + escapeAttr(path) + "'/>\n" +
		"  <target type='virtio' name='" + snapshot.ChannelKvmnet + "'/>\n</channel>\n"
}

func orAuto(p string) string {
	if p == "" {
		return "auto"
	}
	return p
}

// lineStart returns the offset of the first byte of the line holding off.
func lineStart(s string, off int) int {
	return strings.LastIndexByte(s[:off], '\n') + 1
}

// lineIndent returns the whitespace before the first non-blank byte of the line holding off.
func lineIndent(s string, off int) string {
	ls := lineStart(s, off)
	i := ls
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[ls:i]
}

// detectStep guesses one indentation level from the <devices> line and its first child (libvirt
// writes two spaces).
func detectStep(s string, doc domainDoc) string {
	outer := lineIndent(s, doc.devices.start)
	for _, c := range doc.channels {
		if in := lineIndent(s, c.el.tag.start); len(in) > len(outer) && strings.HasPrefix(in, outer) {
			return in[len(outer):]
		}
	}
	// First element after <devices>.
	rest := s[doc.devices.start:]
	if i := strings.Index(rest, ">"); i >= 0 {
		if j := strings.Index(rest[i:], "<"); j >= 0 {
			in := lineIndent(s, doc.devices.start+i+j)
			if len(in) > len(outer) && strings.HasPrefix(in, outer) {
				return in[len(outer):]
			}
		}
	}
	return "  "
}

// escapeAttr escapes a value for a single-quoted XML attribute.
func escapeAttr(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", "'", "&apos;", `"`, "&quot;")
	return r.Replace(s)
}

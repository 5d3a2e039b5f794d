package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// Format is an output format.
type Format string

// Formats.
const (
	FormatTable Format = "table"
	// FormatWide is the table with every column (kubectl's -o wide); commands without extra columns
	// print their table.
	FormatWide Format = "wide"
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// Structured reports whether f is for programs (JSON, YAML): commands then keep their human text
// off stdout. The zero Format is the table.
func (f Format) Structured() bool { return f == FormatJSON || f == FormatYAML }

// ParseFormat checks a -o value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatTable, FormatWide, FormatJSON, FormatYAML:
		return f, nil
	}
	return "", fmt.Errorf("output format %q: want table, wide, json or yaml", s)
}

// Table is a value that renders as rows under headers.
type Table interface {
	Headers() []string
	Rows() [][]string
}

// RowStyler is a Table whose rows carry a style (e.g. by severity).
type RowStyler interface {
	RowStyle(i int) Style
}

// CellStyler is a Table whose cells carry a style; it wins over RowStyler where both are set.
type CellStyler interface {
	CellStyle(row, col int) Style
}

// Summarizer is a value with a one-line summary printed under its table.
type Summarizer interface {
	Summary() string
}

// Renderer writes values in one format.
type Renderer struct {
	w      io.Writer
	format Format
	pal    Palette
}

// New returns a renderer writing to w. Colour is used only when w is a terminal and getenv
// ("NO_COLOR") is empty; getenv nil reads the process environment.
func New(w io.Writer, f Format, getenv func(string) string) *Renderer {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Renderer{w: w, format: f, pal: NewPalette(IsTerminal(w) && getenv("NO_COLOR") == "")}
}

// WithColor forces colour on or off.
func (r *Renderer) WithColor(on bool) *Renderer { c := *r; c.pal = NewPalette(on); return &c }

// Palette is the renderer's palette (colour only on a terminal).
func (r *Renderer) Palette() Palette { return r.pal }

// Writer is where the renderer writes.
func (r *Renderer) Writer() io.Writer { return r.w }

// Format is the renderer's format.
func (r *Renderer) Format() Format { return r.format }

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Render writes v. In table format a value that is not a Table is printed as YAML.
func (r *Renderer) Render(v any) error {
	switch r.format {
	case FormatJSON:
		b, err := JSON(v)
		if err != nil {
			return err
		}
		_, err = r.w.Write(append(b, '\n'))
		return err
	case FormatYAML:
		b, err := YAML(v)
		if err != nil {
			return err
		}
		_, err = r.w.Write(b)
		return err
	default:
		t, ok := v.(Table)
		if !ok {
			b, err := YAML(v)
			if err != nil {
				return err
			}
			_, err = r.w.Write(b)
			return err
		}
		return r.table(t)
	}
}

// JSON encodes v indented by two spaces, with stable bytes (protobuf messages via protojson with
// proto field names and zero values included).
func JSON(v any) ([]byte, error) {
	var raw []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		raw, err = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	} else {
		// Rule texts hold "->" and XML "<dhcp>": HTML escaping would print them as \u003e.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		err = enc.Encode(v)
		raw = buf.Bytes()
	}
	if err != nil {
		return nil, fmt.Errorf("output: encode JSON: %w", err)
	}
	// protojson randomises whitespace on purpose: normalise it.
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, fmt.Errorf("output: encode JSON: %w", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("output: encode JSON: %w", err)
	}
	return out.Bytes(), nil
}

// YAML encodes v as block YAML with the same keys and order as JSON.
func YAML(v any) ([]byte, error) {
	j, err := JSON(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, fmt.Errorf("output: encode YAML: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("output: encode YAML: %w", err)
	}
	_ = enc.Close()
	return buf.Bytes(), nil
}

func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle {
		n.Style = 0 // the encoder quotes again where needed
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func (r *Renderer) table(t Table) error {
	var style func(row, col int) Style
	if cs, ok := t.(CellStyler); ok {
		style = cs.CellStyle
	} else if rs, ok := t.(RowStyler); ok {
		style = func(row, _ int) Style { return rs.RowStyle(row) }
	}
	var b strings.Builder
	writeTable(&b, r.pal, t.Headers(), t.Rows(), style)
	if s, ok := t.(Summarizer); ok {
		if sum := s.Summary(); sum != "" {
			b.WriteString("\n" + Sanitize(sum) + "\n")
		}
	}
	_, err := io.WriteString(r.w, b.String())
	return err
}

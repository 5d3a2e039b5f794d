package output

import "github.com/kvmnet/kvmnet/controller/diagnose"

// Style marks text for colouring on a terminal.
type Style int

// Styles.
const (
	StyleNone Style = iota
	StyleOK
	StyleWarning
	StyleError
	StyleInfo
	StyleDim
	StyleBold
)

// The one set of escape sequences kvmnetctl writes.
var ansi = map[Style]string{
	StyleOK: "\x1b[32m", StyleWarning: "\x1b[33m", StyleError: "\x1b[31m", StyleInfo: "\x1b[36m",
	StyleDim: "\x1b[2m", StyleBold: "\x1b[1m",
}

const ansiReset = "\x1b[0m"

// Palette colours text for a terminal. The zero value is off: text comes back unchanged.
type Palette struct{ on bool }

// NewPalette returns a palette that colours when on.
func NewPalette(on bool) Palette { return Palette{on: on} }

// On reports whether the palette colours.
func (p Palette) On() bool { return p.on }

// Paint wraps text in the style's colour (text unchanged when off or StyleNone).
func (p Palette) Paint(s Style, text string) string {
	if !p.on || ansi[s] == "" {
		return text
	}
	return ansi[s] + text + ansiReset
}

// SeverityStyle is the colour of a severity; no severity (nothing found) is OK.
func SeverityStyle(s diagnose.Severity) Style {
	switch s {
	case diagnose.SeverityError:
		return StyleError
	case diagnose.SeverityWarning:
		return StyleWarning
	case diagnose.SeverityInfo:
		return StyleInfo
	}
	return StyleOK
}

package output

import (
	"strings"
	"unicode/utf8"
)

// writeTable lays rows out under headers in columns two spaces apart, sized in runes, the last column
// unpadded and trailing blanks trimmed. Every cell passes through Sanitize first, so widths are those
// of the text the terminal shows. style (may be nil) colours cells; colour codes are added after
// the widths are known, so they never shift a column.
func writeTable(b *strings.Builder, pal Palette, headers []string, rows [][]string, style func(row, col int) Style) {
	clean := make([][]string, len(rows))
	width := make([]int, len(headers))
	for i, h := range headers {
		width[i] = utf8.RuneCountInString(h)
	}
	for r, row := range rows {
		clean[r] = make([]string, len(headers))
		for i := range headers {
			if i < len(row) {
				clean[r][i] = Sanitize(row[i])
			}
			width[i] = max(width[i], utf8.RuneCountInString(clean[r][i]))
		}
	}
	line := func(cells []string, cellStyle func(col int) Style) {
		last := len(cells) - 1
		for last > 0 && strings.TrimSpace(cells[last]) == "" {
			last--
		}
		var s strings.Builder
		for i, c := range cells[:last+1] {
			if i < last {
				s.WriteString(pal.Paint(cellStyle(i), c) + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
				continue
			}
			s.WriteString(pal.Paint(cellStyle(i), strings.TrimRight(c, " ")))
		}
		b.WriteString(strings.TrimRight(s.String(), " ") + "\n")
	}
	line(headers, func(int) Style { return StyleBold })
	for r := range clean {
		line(clean[r], func(col int) Style {
			if style == nil {
				return StyleNone
			}
			return style(r, col)
		})
	}
}

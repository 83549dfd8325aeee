package bench

import (
	"fmt"
	"slices"
	"strings"
)

// partyOrder is the column order of the CPU table; parties not listed
// follow alphabetically.
var partyOrder = []string{"capture", "archiver", "restorer", "pg_recvlogical", "postgres", "postgres-target", "nats-server", "versitygw", "bench"}

// CPURows renders the per-phase CPU accounting as table rows: for each
// phase its wall time, then every party's CPU use in cores (CPU seconds ÷
// wall seconds), the rest of the machine ("other": other agents' load on a
// shared machine) and the machine's cores.
func CPURows(uses []CPUUse) (head []string, rows [][]string) {
	seen := map[string]bool{}
	for _, u := range uses {
		for name := range u.By {
			seen[name] = true
		}
	}
	var cols []string
	for _, p := range partyOrder {
		if seen[p] {
			cols = append(cols, p)
			delete(seen, p)
		}
	}
	var rest []string
	for p := range seen {
		rest = append(rest, p)
	}
	slices.Sort(rest)
	cols = append(cols, rest...)
	head = append(append([]string{"phase", "wall"}, cols...), "other", "machine")
	for _, u := range uses {
		w := u.Wall.Seconds()
		if w <= 0 {
			continue
		}
		row := []string{u.Phase, fmt.Sprintf("%.2f s", w)}
		var ours float64
		for _, c := range cols {
			d := u.By[c].Seconds()
			ours += d
			if d == 0 {
				row = append(row, "—")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f", d/w))
		}
		other := max(u.Machine.Seconds()-ours, 0)
		row = append(row, fmt.Sprintf("%.2f", other/w), fmt.Sprintf("%.2f of %d", u.Machine.Seconds()/w, u.Cores))
		rows = append(rows, row)
	}
	return head, rows
}

// CPUTable renders CPURows as aligned text.
func CPUTable(uses []CPUUse) string {
	head, rows := CPURows(uses)
	return alignRows(append([][]string{head}, rows...))
}

// CPUMarkdown renders CPURows as a Markdown table.
func CPUMarkdown(uses []CPUUse) string {
	head, rows := CPURows(uses)
	var b strings.Builder
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// alignRows renders rows (the first a header) as aligned columns.
func alignRows(all [][]string) string {
	var width []int
	for _, r := range all {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for j, r := range all {
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c + strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		b.WriteString("\n")
		if j == 0 {
			for i := range r {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", width[i]))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

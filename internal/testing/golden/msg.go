package golden

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// MarshalMsgs renders JetStream messages in the golden text form:
//
//	# comment lines (optional, before the first message)
//	subject tidemark.heartbeat
//	header Nats-Msg-Id "7300000000000000001-hb-16b37400"
//	header Tidemark-Kind "heartbeat"
//	data 63
//	{"lsn":"16/B37400",…}
//
// Headers are sorted by name, each value Go-quoted (so empty values and
// non-ASCII text are unambiguous); data is the body's length and then the
// body exactly, followed by a newline. A blank line separates messages.
// The form is canonical: equal messages render to equal bytes.
func MarshalMsgs(comment string, msgs ...*nats.Msg) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(comment), "\n") {
		if line != "" {
			b.WriteString("# " + line + "\n")
		}
	}
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "subject %s\n", m.Subject)
		names := make([]string, 0, len(m.Header))
		for k := range m.Header {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range m.Header[k] {
				fmt.Fprintf(&b, "header %s %s\n", k, strconv.Quote(v))
			}
		}
		fmt.Fprintf(&b, "data %d\n", len(m.Data))
		b.Write(m.Data)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// UnmarshalMsgs parses what MarshalMsgs wrote.
func UnmarshalMsgs(data []byte) ([]*nats.Msg, error) {
	r := bufio.NewReader(bytes.NewReader(data))
	var (
		msgs []*nats.Msg
		cur  *nats.Msg
	)
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			if cur != nil {
				return nil, fmt.Errorf("message %d has no data line", len(msgs)+1)
			}
			return msgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: unterminated", n)
		}
		line = strings.TrimSuffix(line, "\n")
		word, rest, _ := strings.Cut(line, " ")
		switch {
		case line == "" && cur == nil, strings.HasPrefix(line, "#") && cur == nil && len(msgs) == 0:
		case word == "subject" && cur == nil:
			cur = &nats.Msg{Subject: rest, Header: nats.Header{}}
		case word == "header" && cur != nil:
			name, quoted, ok := strings.Cut(rest, " ")
			v, qerr := strconv.Unquote(quoted)
			if !ok || qerr != nil {
				return nil, fmt.Errorf("line %d: malformed header", n)
			}
			cur.Header[name] = append(cur.Header[name], v)
		case word == "data" && cur != nil:
			size, perr := strconv.Atoi(rest)
			if perr != nil || size < 0 {
				return nil, fmt.Errorf("line %d: malformed data length", n)
			}
			cur.Data = make([]byte, size+1)
			if _, err := io.ReadFull(r, cur.Data); err != nil || cur.Data[size] != '\n' {
				return nil, fmt.Errorf("line %d: data of %d bytes not followed by a newline", n, size)
			}
			cur.Data = cur.Data[:size]
			n += bytes.Count(cur.Data, []byte("\n")) + 1
			msgs = append(msgs, cur)
			cur = nil
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", n, line)
		}
	}
}

// DiffMsg names what differs between two messages, or "".
func DiffMsg(got, want *nats.Msg) string {
	var d []string
	if got.Subject != want.Subject {
		d = append(d, fmt.Sprintf("subject %q, want %q", got.Subject, want.Subject))
	}
	names := map[string]bool{}
	for k := range got.Header {
		names[k] = true
	}
	for k := range want.Header {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		if !slices.Equal(got.Header[k], want.Header[k]) {
			d = append(d, fmt.Sprintf("header %s %q, want %q", k, got.Header[k], want.Header[k]))
		}
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, "data: "+Diff(want.Data, got.Data))
	}
	return strings.Join(d, "; ")
}

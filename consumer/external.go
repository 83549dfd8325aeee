package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// headerExternal names the columns whose values travel outside an event
// message, in the <stream>_VALUES object store ("<col idx>=<size>:<sha256>,…").
const headerExternal = "Tidemark-External"

// ErrExternalValues: an event's values travel outside its message and this
// version cannot fetch them yet.
var ErrExternalValues = errors.New("consumer: event carries external values")

// reassembleExternal puts a message's external values back into its body.
//
// HOOK(external values, h13L): until that feed change is merged this only
// refuses such a message — loudly, never by delivering a row without its
// values. The lead wires in the reassembly (fetch each value from the
// <stream>_VALUES object store, check size and SHA-256, splice it in).
func reassembleExternal(_ context.Context, m *nats.Msg) error {
	if v := m.Header.Get(headerExternal); v != "" {
		return fmt.Errorf("%w (%s: %s); Try: upgrade this consumer to one that reads the <stream>_VALUES object store", ErrExternalValues, headerExternal, v)
	}
	return nil
}

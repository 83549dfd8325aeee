package feed

import (
	"fmt"

	"github.com/tidemark/tidemark/internal/event"
)

// checkResync validates the resync mark of a heartbeat at position lsn
// (issue 18: the only feed addition for source failover, in the heartbeat
// body's "resync" member).
func checkResync(r *event.Resync, lsn event.Position) error {
	switch {
	case r.Phase != event.ResyncBegin && r.Phase != event.ResyncDone:
		return fmt.Errorf("resync phase %q is neither %q nor %q", r.Phase, event.ResyncBegin, event.ResyncDone)
	case r.ID == "" || len(r.ID) > 128:
		return fmt.Errorf("resync id %q is empty or over 128 bytes", r.ID)
	case r.SlotLSN <= r.Base:
		return fmt.Errorf("resync slot position %s is not above its base %s", r.SlotLSN, r.Base)
	case r.Phase == event.ResyncBegin && lsn != r.Base+1:
		return fmt.Errorf("resync begin at %s, want its base %s + 1", lsn, r.Base)
	case r.Phase == event.ResyncDone && lsn != r.SlotLSN:
		return fmt.Errorf("resync done at %s, want the slot position %s", lsn, r.SlotLSN)
	case r.Rows < 0 || r.Transactions < 0:
		return fmt.Errorf("resync counts are negative")
	}
	return nil
}

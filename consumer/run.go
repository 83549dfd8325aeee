package consumer

import (
	"context"
	"fmt"
)

// Run reads transactions and hands each to handle, saving the position of
// every transaction handle accepted in store. It starts after the saved
// position when store holds one, else at start; so running it again after
// a crash continues exactly after the last transaction handle returned
// nil for (handle may see the transaction it was processing when the
// process died again: make its effect and the saved position one atomic
// step, or make it idempotent). It returns handle's first error, the
// cursor's, or ctx's.
func Run(ctx context.Context, cfg Config, start Start, store PositionStore, handle func(context.Context, *Transaction) error) error {
	if store != nil {
		p, ok, err := store.Load()
		if err != nil {
			return err
		}
		if ok {
			start = Resume(p)
		}
	}
	cur, err := Open(ctx, cfg, start)
	if err != nil {
		return err
	}
	defer cur.Close()
	for {
		t, err := cur.NextTransaction(ctx)
		if err != nil {
			return err
		}
		if err := handle(ctx, t); err != nil {
			return err
		}
		if store != nil {
			if err := store.Save(t.Position()); err != nil {
				return fmt.Errorf("consumer: save position: %w", err)
			}
		}
	}
}

package eventcore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/eventcore"
	"github.com/tidemark/tidemark/internal/testrig"
)

func TestApply_Idempotent(t *testing.T) {
	ctx := context.Background()
	pg := testrig.StartPostgres(t)
	conn, err := pgx.Connect(ctx, pg.NewDatabase(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for i := range 2 {
		if err := eventcore.Apply(ctx, conn); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventcore_events'::regclass AND tgname = ANY($1)`,
		eventcore.Triggers).Scan(&n); err != nil {
		t.Fatalf("count triggers: %v", err)
	}
	if n != len(eventcore.Triggers) {
		t.Fatalf("triggers = %d, want %d", n, len(eventcore.Triggers))
	}
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

var roleSeq atomic.Int64

// roleDB creates a login role and a database it owns with EventCore's
// schema applied by that role, and returns the database URL as the role,
// plus the superuser URL of the same database.
func roleDB(t *testing.T, owner bool) (roleURL, superURL string, role string) {
	t.Helper()
	ctx := context.Background()
	pg := shared.PG.Get(t)
	role = fmt.Sprintf("tm_restore_role_%d_%d", os.Getpid(), roleSeq.Add(1))
	admin, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE ROLE `+pgx.Identifier{role}.Sanitize()+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	superURL = pg.NewDatabase(t)
	u, _ := url.Parse(superURL)
	db := strings.TrimPrefix(u.Path, "/")
	if owner {
		if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` OWNER TO `+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	u.User = url.User(role)
	roleURL = u.String()
	schemaAs := superURL
	if owner {
		schemaAs = roleURL
	}
	conn, err := pgx.Connect(ctx, schemaAs)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := eventcore.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if !owner {
		if _, err := conn.Exec(ctx, `GRANT SELECT, INSERT ON eventcore_events TO `+pgx.Identifier{role}.Sanitize()+
			`; GRANT CREATE, USAGE ON SCHEMA public TO `+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	return roleURL, superURL, role
}

func TestRestore_Privileges(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	ctx := context.Background()
	at := f.times[len(f.times)/3]
	p, _ := a.Plan(at, "")

	t.Run("table owner disables triggers inside each batch", func(t *testing.T) {
		roleURL, superURL, _ := roleDB(t, true)
		res, err := Restore(ctx, p, Options{TargetURL: roleURL, BatchRows: 700})
		if err != nil {
			t.Fatal(err)
		}
		if res.TriggerBypass != "disable_trigger" || res.Verification.Status != VerifyOK {
			t.Fatalf("bypass %q, verification %+v", res.TriggerBypass, res.Verification)
		}
		restoretest.Compare(t, f.sourceURL, superURL, at)
		conn, err := pgx.Connect(ctx, superURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var enabled int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventcore_events'::regclass AND tgenabled = 'O' AND NOT tgisinternal`).Scan(&enabled); err != nil || enabled != len(eventcore.Triggers) {
			t.Fatalf("enabled triggers after restore: %d, %v", enabled, err)
		}
	})

	t.Run("role without the privilege is told which one", func(t *testing.T) {
		roleURL, superURL, _ := roleDB(t, false)
		before := restoretest.TargetState(t, superURL)
		_, err := Restore(ctx, p, Options{TargetURL: roleURL})
		if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "superuser") || !strings.Contains(err.Error(), "DISABLE TRIGGER") {
			t.Fatalf("restore as a plain role: %v, want ErrPrivilege naming superuser and DISABLE TRIGGER", err)
		}
		t.Logf("%v\n  Try: %s", err, HintOf(err))
		if after := restoretest.TargetState(t, superURL); after != before {
			t.Fatalf("target changed: %q -> %q", before, after)
		}
	})
}

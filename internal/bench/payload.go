package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/google/uuid"
)

// eventTypes are the event types of the bulk workload (as loadgen's).
var eventTypes = []string{
	"AccountOpened", "AccountClosed", "FundsDeposited", "FundsWithdrawn",
	"TransferRequested", "TransferCompleted", "OrderPlaced", "OrderPaid",
	"OrderShipped", "OrderDelivered", "OrderCancelled", "ItemAddedToCart",
	"ItemRemovedFromCart", "CustomerRegistered", "CustomerAddressChanged",
	"InvoiceIssued", "PaymentAuthorized", "PaymentCaptured", "RefundIssued",
	"InventoryAdjusted",
}

var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliett
kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray
yankee zulu tide mark wave harbour anchor keel rudder mast sail`)

var currencies = []string{"EUR", "USD", "GBP", "JPY", "CHF"}

type money struct {
	Value    int64  `json:"value"`
	Currency string `json:"currency"`
}

type address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	Postal  string `json:"postal_code"`
	Country string `json:"country"`
}

type person struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	Address address `json:"address"`
}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
	Price    money  `json:"price"`
}

type eventData struct {
	Type     string         `json:"type"`
	Sequence int64          `json:"sequence"`
	Amount   money          `json:"amount"`
	Customer person         `json:"customer"`
	Lines    []line         `json:"lines"`
	Tags     []string       `json:"tags"`
	Flags    map[string]any `json:"flags"`
	Note     string         `json:"note"`
}

type metadata struct {
	CorrelationID string `json:"correlation_id"`
	CausationID   string `json:"causation_id"`
	UserID        string `json:"user_id"`
	Source        string `json:"source"`
}

// payloads makes EventCore-style event bodies: the same shapes, sizes and
// vocabulary as internal/loadgen (event_data ~300–600 bytes, metadata
// ~150 bytes with random ids), so compression ratios are realistic.
type payloads struct {
	rng *rand.Rand
	seq int64
}

func newPayloads(seed, stream uint64) *payloads {
	return &payloads{rng: rand.New(rand.NewPCG(seed, stream))}
}

func (g *payloads) word() string { return words[g.rng.IntN(len(words))] }

func (g *payloads) eventType() string { return eventTypes[g.rng.IntN(len(eventTypes))] }

// eventData returns a JSON document of roughly 300–600 bytes.
func (g *payloads) eventData(typ string) []byte {
	g.seq++
	target := 300 + g.rng.IntN(301)
	d := eventData{
		Type:     typ,
		Sequence: g.seq,
		Amount:   money{Value: g.rng.Int64N(1_000_000), Currency: currencies[g.rng.IntN(len(currencies))]},
		Customer: person{
			ID:    fmt.Sprintf("cust-%06d", g.rng.IntN(1_000_000)),
			Name:  g.word() + " " + g.word(),
			Email: g.word() + "@" + g.word() + ".example",
			Address: address{
				Street:  fmt.Sprintf("%d %s street", 1+g.rng.IntN(999), g.word()),
				City:    g.word(),
				Postal:  fmt.Sprintf("%05d", g.rng.IntN(100000)),
				Country: []string{"DE", "FR", "NL", "US", "JP"}[g.rng.IntN(5)],
			},
		},
		Tags:  []string{g.word(), g.word()},
		Flags: map[string]any{"priority": g.rng.IntN(5), "gift": g.rng.IntN(2) == 1, "channel": g.word()},
	}
	for range 1 + g.rng.IntN(2) {
		d.Lines = append(d.Lines, line{
			SKU:      fmt.Sprintf("SKU-%05d", g.rng.IntN(100000)),
			Quantity: 1 + g.rng.IntN(9),
			Price:    money{Value: g.rng.Int64N(100_000), Currency: d.Amount.Currency},
		})
	}
	b, _ := json.Marshal(d)
	if pad := target - len(b); pad > 0 {
		d.Note = g.text(pad)
		b, _ = json.Marshal(d)
	}
	return b
}

// text returns n bytes of space-separated words.
func (g *payloads) text(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(g.word())
	}
	return sb.String()[:n]
}

// metadata returns a ~150-byte JSON document with correlation, causation
// and user ids.
func (g *payloads) metadata(correlation string) []byte {
	b, _ := json.Marshal(metadata{
		CorrelationID: correlation,
		CausationID:   uuid.NewString(),
		UserID:        fmt.Sprintf("user-%05d", g.rng.IntN(100000)),
		Source:        "bench",
	})
	return b
}

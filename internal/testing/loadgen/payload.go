package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/google/uuid"
)

// EventTypes are the event types the workload writes.
var EventTypes = []string{
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

type party struct {
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
	Customer party          `json:"customer"`
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

// generator makes event payloads from a seeded source.
type generator struct {
	rng *rand.Rand
	seq int64
}

func newGenerator(seed, stream uint64) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, stream))}
}

func (g *generator) word() string { return words[g.rng.IntN(len(words))] }

func (g *generator) eventType() string { return EventTypes[g.rng.IntN(len(EventTypes))] }

// eventData returns a JSON document of roughly 300–600 bytes.
func (g *generator) eventData(eventType string) []byte {
	g.seq++
	target := 300 + g.rng.IntN(301)
	d := eventData{
		Type:     eventType,
		Sequence: g.seq,
		Amount:   money{Value: g.rng.Int64N(1_000_000), Currency: currencies[g.rng.IntN(len(currencies))]},
		Customer: party{
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
func (g *generator) text(n int) string {
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
func (g *generator) metadata(correlation string) []byte {
	b, _ := json.Marshal(metadata{
		CorrelationID: correlation,
		CausationID:   uuid.NewString(),
		UserID:        fmt.Sprintf("user-%05d", g.rng.IntN(100000)),
		Source:        "loadgen",
	})
	return b
}

// Payloads generates EventCore-style event types, event data and metadata
// for drivers that write rows their own way (the benchmarks' bulk loader),
// so every workload of the project has the same shape.
type Payloads struct {
	g *generator
}

// NewPayloads returns a generator seeded by seed and stream.
func NewPayloads(seed, stream uint64) *Payloads { return &Payloads{g: newGenerator(seed, stream)} }

// IntN returns a pseudo-random int in [0, n) from the generator's source.
func (p *Payloads) IntN(n int) int { return p.g.rng.IntN(n) }

// EventType returns one of EventTypes.
func (p *Payloads) EventType() string { return p.g.eventType() }

// EventData returns ~300–600 bytes of nested JSON for an event of the type.
func (p *Payloads) EventData(eventType string) []byte { return p.g.eventData(eventType) }

// Metadata returns ~150 bytes of JSON with correlation, causation and user ids.
func (p *Payloads) Metadata(correlation string) []byte { return p.g.metadata(correlation) }

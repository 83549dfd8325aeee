package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// minPayload is the smallest max_payload (and stream max_msg_size) capture
// works with: an event message's headers and the row without its large
// values (which travel outside the message, docs/feed.md) fit well within
// it. The server's default is 1 MiB.
const minPayload = 64 << 10

// checkNATSLimits checks, at start, the JetStream settings that would
// otherwise stop capture later with the slot holding WAL: the account's
// JetStream limits (and, in checkStreamLimits, the stream's max_msg_size;
// Capture.Run checks the server's max_payload on connecting). Every failure names the setting. None of them needs to
// change from nats-server's defaults.
func checkNATSLimits(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabledForAccount ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
			return fatal(fmt.Errorf("JetStream is not enabled for this NATS account: %w", err),
				"start nats-server with -js (or jetstream {} in its configuration) and enable JetStream for the account")
		}
		return fmt.Errorf("read JetStream account limits: %w", err)
	}
	lim := ai.Limits
	switch {
	case lim.MaxStore == 0:
		return fatal(errors.New("the NATS account's JetStream limits allow no file storage"),
			"give the account file storage (accounts { … jetstream { max_file: … } }, or the server's max_file_store)")
	case lim.MaxStreams > 0 && ai.Streams >= lim.MaxStreams && !streamExists(ctx, js, cfg.Stream):
		return fatal(fmt.Errorf("the NATS account has %d of %d streams and stream %s does not exist yet", ai.Streams, lim.MaxStreams, cfg.Stream),
			"raise the account's jetstream max_streams, or remove a stream")
	case lim.MaxBytesRequired && cfg.MaxBytes < 0:
		return fatal(errors.New("the NATS account requires a size limit on every stream"),
			"set capture's --max-bytes (a full stream makes capture wait; the slot keeps the WAL meanwhile)")
	case lim.StoreMaxStreamBytes > 0 && cfg.MaxBytes > lim.StoreMaxStreamBytes:
		return fatal(fmt.Errorf("--max-bytes %d exceeds the account's largest stream, %d bytes", cfg.MaxBytes, lim.StoreMaxStreamBytes),
			"lower --max-bytes, or raise the account's jetstream max_bytes per stream")
	case lim.MaxStore > 0 && cfg.MaxBytes > lim.MaxStore:
		return fatal(fmt.Errorf("--max-bytes %d exceeds the account's JetStream storage, %d bytes", cfg.MaxBytes, lim.MaxStore),
			"lower --max-bytes, or raise the account's jetstream max_file")
	case lim.MaxStore > 0 && ai.Store >= uint64(lim.MaxStore)/10*9:
		cfg.Logger.Warn("the NATS account's JetStream storage is over 90% used; capture waits when it is full",
			"used_bytes", ai.Store, "limit_bytes", lim.MaxStore, "setting", "account jetstream max_file / server max_file_store")
	}
	return nil
}

func streamExists(ctx context.Context, js jetstream.JetStream, name string) bool {
	_, err := js.Stream(ctx, name)
	return err == nil
}

// checkStreamLimits checks the stream as it is after setup: capture owns
// its configuration, but a stream changed by hand, or by an older server,
// may limit message size below what capture sends.
func checkStreamLimits(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	st, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", cfg.Stream, err)
	}
	if m := st.CachedInfo().Config.MaxMsgSize; m > 0 && m < minPayload {
		return fatal(fmt.Errorf("stream %s has max_msg_size %d; capture needs at least %d", cfg.Stream, m, minPayload),
			fmt.Sprintf("remove the limit: nats stream edit %s --max-msg-size=-1", cfg.Stream))
	}
	return nil
}

// limitHint explains a publish error caused by a JetStream limit, naming
// the setting ("" for other errors). Capture keeps retrying meanwhile; the
// slot holds the WAL.
func limitHint(err error) string {
	var apiErr *jetstream.APIError
	code := jetstream.ErrorCode(0)
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode
	}
	msg := err.Error()
	switch {
	case code == 10047 || code == 10023 || strings.Contains(msg, "insufficient storage") || strings.Contains(msg, "insufficient resources"):
		return "JetStream has no storage left: free disk on the NATS server or raise max_file_store (server) / max_file (account)"
	case code == 10002 || strings.Contains(msg, "resource limits exceeded"):
		return "the NATS account's JetStream limits are reached: raise them (accounts { … jetstream { … } })"
	case strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "maximum messages exceeded"):
		return "the stream is full (--max-bytes, DiscardNew): the archiver frees it as it archives; check that it runs, or raise --max-bytes"
	case code == jetstream.JSErrCodeStreamMessageExceedsMaximum || errors.Is(err, nats.ErrMaxPayload):
		return "a message exceeds max_payload or the stream's max_msg_size: lower --external-value-bytes, or raise the limit"
	}
	return ""
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mlrelay/relay/relay"
)

const (
	saveLaunchSQL = `INSERT INTO launches (prediction_id, model, guild_id, channel_id, user_id, token, token_expires, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (prediction_id) DO UPDATE SET model = excluded.model, guild_id = excluded.guild_id,
			channel_id = excluded.channel_id, user_id = excluded.user_id, token = excluded.token,
			token_expires = excluded.token_expires, created_at = excluded.created_at`

	addLaunchSQL = `INSERT INTO launches (prediction_id, model, guild_id, channel_id, user_id, token, token_expires, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (prediction_id) DO NOTHING`

	launchSQL = `SELECT model, guild_id, channel_id, user_id, token, token_expires, created_at
		FROM launches WHERE prediction_id = ?`

	pruneLaunchesSQL = `DELETE FROM launches WHERE prediction_id IN
		(SELECT prediction_id FROM launches WHERE created_at < ? LIMIT ?)`
)

// SaveLaunch records a launch; see relay.Store. It is durable: the bot answers the user only
// once the launch is on disk.
func (s *Store) SaveLaunch(ctx context.Context, l relay.Launch) error {
	_, err := s.writeLaunch(ctx, saveLaunchSQL, l)
	return err
}

// AddLaunch records a launch unless its id is recorded already; see relay.Store.
func (s *Store) AddLaunch(ctx context.Context, l relay.Launch) error {
	added, err := s.writeLaunch(ctx, addLaunchSQL, l)
	if err == nil && !added {
		err = fmt.Errorf("sqlite: add launch %s: %w", l.PredictionID, relay.ErrLaunchExists)
	}
	return err
}

// writeLaunch runs one of the launch-recording statements in a durable transaction and reports
// whether it wrote a row.
func (s *Store) writeLaunch(ctx context.Context, query string, l relay.Launch) (wrote bool, err error) {
	if l.PredictionID == "" {
		return false, errors.New("sqlite: save launch: no prediction id")
	}
	tx, err := s.begin(ctx, true)
	if err != nil {
		return false, fmt.Errorf("sqlite: save launch: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	n, err := changed(tx.ExecContext(ctx, query, l.PredictionID, l.Model, l.GuildID, l.ChannelID, l.UserID, l.Token,
		l.TokenExpires.UnixNano(), l.CreatedAt.UnixNano()))
	if err != nil {
		return false, fmt.Errorf("sqlite: save launch %s: %w", l.PredictionID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: save launch %s: commit: %w", l.PredictionID, err)
	}
	return n > 0, nil
}

// Launch returns the launch recorded for a prediction; see relay.Store.
func (s *Store) Launch(ctx context.Context, predictionID string) (relay.Launch, error) {
	l := relay.Launch{PredictionID: predictionID}
	var expires, created int64
	err := s.db.QueryRowContext(ctx, launchSQL, predictionID).Scan(&l.Model, &l.GuildID, &l.ChannelID, &l.UserID, &l.Token, &expires, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return relay.Launch{}, fmt.Errorf("sqlite: launch %s: %w", predictionID, relay.ErrNoLaunch)
	case err != nil:
		return relay.Launch{}, fmt.Errorf("sqlite: launch %s: %w", predictionID, err)
	}
	l.TokenExpires, l.CreatedAt = fromNanos(expires), fromNanos(created)
	return l, nil
}

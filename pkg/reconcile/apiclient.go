package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiClient calls the service's reconciliation endpoints.
type apiClient struct {
	base string
	key  string
	hc   *http.Client
}

// runPage is one answer of GET /v1/reconciliations/{id}.
type runPage struct {
	Run        Run         `json:"run"`
	Exceptions []Exception `json:"exceptions"`
	NextCursor string      `json:"next_cursor"`
}

// applyResult is the answer of POST /v1/reconciliations/{id}/apply.
type applyResult struct {
	RunID   string  `json:"run_id"`
	Applied Applied `json:"applied"`
}

// apiError is an answer other than 200, with its problem details.
type apiError struct {
	Status int
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.Status, e.Title)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

func (a *apiClient) get(ctx context.Context, id string, q url.Values) (runPage, error) {
	var p runPage
	err := a.call(ctx, http.MethodGet, "/v1/reconciliations/"+url.PathEscape(id)+"?"+q.Encode(), nil, &p)
	return p, err
}

func (a *apiClient) apply(ctx context.Context, id string, classes, locs []string) (applyResult, error) {
	body := struct {
		Classes   []string `json:"classes,omitempty"`
		Locations []string `json:"locations,omitempty"`
	}{classes, locs}
	var res applyResult
	err := a.call(ctx, http.MethodPost, "/v1/reconciliations/"+url.PathEscape(id)+"/apply", body, &res)
	return res, err
}

// call sends a request and decodes a 200 into out; any other status comes
// back as *apiError, a failure to reach the API as a plain error.
func (a *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said below, without the query
		}
		return fmt.Errorf("API %s is not reachable: %w", a.base, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end or given up on: nothing to do on failure
	if resp.StatusCode != http.StatusOK {
		return problemOf(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// problemOf reads an error answer's problem details, or says what came.
func problemOf(resp *http.Response) *apiError {
	e := &apiError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, e) != nil || e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
		if e.Detail == "" {
			e.Detail = strings.TrimSpace(string(b))
			if len(e.Detail) > 200 {
				e.Detail = e.Detail[:200] + "…"
			}
		}
	}
	return e
}

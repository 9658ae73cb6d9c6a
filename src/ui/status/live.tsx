/**
 * The ink dashboard for `raysub status` on a terminal. Loaded only by that command, so ink and
 * react never slow down any other command. `--watch` refreshes it until `q`, Esc or Ctrl-C.
 */
import { Box, Text, render, useApp, useInput, useStdout } from 'ink';
import { useEffect, useState } from 'react';
import { palette } from '../color.js';
import type { StatusView } from './model.js';
import { statusSections } from './sections.js';

export interface LiveOptions {
  /** The first snapshot, loaded before rendering so an unreachable head fails like any command. */
  initial: StatusView;
  load: () => Promise<StatusView>;
  intervalMs: number;
  watch: boolean;
  /** Whether stdin is a terminal we can read keys from. */
  interactive: boolean;
  color: boolean;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19) + 'Z';
}

function Dashboard({ initial, load, intervalMs, watch, interactive, color }: LiveOptions) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [view, setView] = useState<StatusView>(initial);
  const [error, setError] = useState<string | null>(null);
  const c = palette(color);

  useInput(
    (input, key) => {
      if (input === 'q' || key.escape) exit();
    },
    { isActive: interactive && watch },
  );

  useEffect(() => {
    // Without --watch the dashboard is drawn once, then the command ends.
    if (!watch) {
      exit();
      return;
    }
    let cancelled = false;
    let timer: NodeJS.Timeout | undefined;
    const refresh = async (): Promise<void> => {
      try {
        const v = await load();
        if (cancelled) return;
        setView(v);
        setError(null);
      } catch (err) {
        if (cancelled) return;
        setError(err instanceof Error ? err.message : String(err));
      }
      if (!cancelled) timer = setTimeout(() => void refresh(), intervalMs);
    };
    timer = setTimeout(() => void refresh(), intervalMs);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [load, intervalMs, watch, exit]);

  const header = (
    <Text>
      {c.bold('raysub status')} {view.address}
      {`  updated ${clock(view.time)}`}
      {watch ? c.dim(`  every ${intervalMs / 1000}s, q to quit`) : ''}
    </Text>
  );
  return (
    <Box flexDirection="column">
      {header}
      {error ? <Text>{c.red(`cannot reach the head: ${error}${watch ? '; retrying' : ''}`)}</Text> : null}
      {/* The terminal's size: every line fits its width, the whole its height (less the header and a last line). */}
      {statusSections(view, c, { bars: true, width: stdout.columns ? stdout.columns - 1 : undefined, height: stdout.rows ? stdout.rows - 2 - (error ? 1 : 0) : undefined }).map((s) => (
        <Box key={s.title || 'collapsed'} flexDirection="column" marginTop={1}>
          {s.title ? <Text>{c.bold(s.title)}</Text> : null}
          <Text>{s.body.trimEnd()}</Text>
        </Box>
      ))}
    </Box>
  );
}

/** Render the dashboard; resolves when it is closed (q, Esc, Ctrl-C or SIGTERM), or once drawn without --watch. */
export async function runLiveStatus(opts: LiveOptions): Promise<void> {
  const app = render(<Dashboard {...opts} />, { exitOnCtrlC: true, patchConsole: false });
  // Ctrl-C arrives as a key when stdin is a raw terminal, else as a signal: either ends it cleanly.
  const stop = () => app.unmount();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await app.waitUntilExit();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

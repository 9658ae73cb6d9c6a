const SYMBOL: Record<string, string> = { PENDING: '◷', RUNNING: '▶', SUCCEEDED: '✓', FAILED: '✕', STOPPED: '■', ALIVE: '●', DRAINING: '◐', LOST: '✕', GONE: '—', ASSIGNED: '◷' };

/** A state as a word and a shape, never as a colour alone. */
export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge s-${status.toLowerCase()}`}>
      <span aria-hidden="true">{SYMBOL[status] ?? '•'} </span>
      {status}
    </span>
  );
}

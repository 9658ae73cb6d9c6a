/** Minimal ANSI styling that obeys NO_COLOR, --no-color and whether the stream is a TTY. */
export interface Palette {
  enabled: boolean;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
  cyan(s: string): string;
}

function wrap(enabled: boolean, open: string, close: string) {
  return (s: string) => (enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s);
}

export function palette(enabled: boolean): Palette {
  return {
    enabled,
    red: wrap(enabled, '31', '39'),
    green: wrap(enabled, '32', '39'),
    yellow: wrap(enabled, '33', '39'),
    dim: wrap(enabled, '2', '22'),
    bold: wrap(enabled, '1', '22'),
    cyan: wrap(enabled, '36', '39'),
  };
}

export function statusColor(p: Palette, status: string): string {
  switch (status) {
    case 'SUCCEEDED':
    case 'ALIVE':
      return p.green(status);
    case 'FAILED':
    case 'LOST':
    case 'UNHEALTHY':
      return p.red(status);
    case 'STOPPED':
    case 'PENDING':
    case 'DRAINING':
    case 'CORDONED':
      return p.yellow(status);
    default:
      return p.cyan(status);
  }
}

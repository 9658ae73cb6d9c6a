/**
 * A minimal terminal screen: replays what a program wrote to a terminal (text, CR/LF, cursor
 * movement, erase) and returns what a person would see. Enough for ink's output; colours and
 * modes are ignored.
 */
export function renderScreen(data: string, cols = 100, rows = 40): string {
  const blank = () => Array.from({ length: cols }, () => ' ');
  let grid: string[][] = Array.from({ length: rows }, blank);
  let row = 0;
  let col = 0;
  const clamp = () => {
    row = Math.max(0, Math.min(rows - 1, row));
    col = Math.max(0, Math.min(cols - 1, col));
  };
  const lineFeed = () => {
    row++;
    if (row >= rows) {
      grid = [...grid.slice(1), blank()];
      row = rows - 1;
    }
  };
  const chars = [...data];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\u001b') {
      const next = chars[i + 1];
      if (next === '[') {
        let j = i + 2;
        let params = '';
        while (j < chars.length && !/[@-~]/.test(chars[j]!)) params += chars[j++];
        const final = chars[j];
        i = j;
        if (params.startsWith('?')) continue; // private modes: cursor visibility, sync output
        const nums = params.split(';').map((p) => (p === '' ? NaN : Number(p)));
        const n = Number.isNaN(nums[0]!) ? 1 : nums[0]!;
        switch (final) {
          case 'A': row -= n; break;
          case 'B': row += n; break;
          case 'C': col += n; break;
          case 'D': col -= n; break;
          case 'G': col = n - 1; break;
          case 'H':
          case 'f':
            row = (Number.isNaN(nums[0]!) ? 1 : nums[0]!) - 1;
            col = (Number.isNaN(nums[1] ?? NaN) ? 1 : nums[1]!) - 1;
            break;
          case 'J': {
            const mode = Number.isNaN(nums[0]!) ? 0 : nums[0]!;
            if (mode === 2 || mode === 3) grid = Array.from({ length: rows }, blank);
            else if (mode === 0) {
              for (let c = col; c < cols; c++) grid[row]![c] = ' ';
              for (let r = row + 1; r < rows; r++) grid[r] = blank();
            }
            break;
          }
          case 'K': {
            const mode = Number.isNaN(nums[0]!) ? 0 : nums[0]!;
            const [from, to] = mode === 0 ? [col, cols] : mode === 1 ? [0, col + 1] : [0, cols];
            for (let c = from; c < to; c++) grid[row]![c] = ' ';
            break;
          }
          default:
            break; // colours and anything else: no effect on the text
        }
        clamp();
      } else if (next === ']') {
        // OSC: skip to BEL or ST.
        let j = i + 2;
        while (j < chars.length && chars[j] !== '\u0007' && !(chars[j] === '\u001b' && chars[j + 1] === '\\')) j++;
        i = chars[j] === '\u0007' ? j : j + 1;
      } else {
        i++; // a two-character escape
      }
    } else if (ch === '\r') col = 0;
    else if (ch === '\n') lineFeed();
    else if (ch === '\b') col = Math.max(0, col - 1);
    else if (ch >= ' ') {
      if (col >= cols) {
        col = 0;
        lineFeed();
      }
      grid[row]![col++] = ch;
    }
  }
  const lines = grid.map((l) => l.join('').trimEnd());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}

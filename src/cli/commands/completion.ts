/**
 * Shell completion scripts for bash and zsh, generated from the commander program itself so they
 * always list the commands and flags this build has.
 */
import type { Command } from 'commander';
import { RaysubError } from '../../shared/errors.js';
import { EXIT } from '../exitCodes.js';

interface OptSpec {
  names: string[];
  description: string;
  valued: boolean;
  choices: string[];
  /** What to complete as the value: files, directories, or nothing in particular. */
  files: 'file' | 'dir' | null;
}

interface CmdSpec {
  path: string;
  subs: { name: string; description: string }[];
  opts: OptSpec[];
}

const DIR_FLAGS = new Set(['--data-dir', '--work-dir']);
const FILE_FLAGS = new Set(['--working-dir', '--runtime-env']);

function collect(cmd: Command, path: string, out: CmdSpec[]): void {
  const opts: OptSpec[] = cmd.options
    .filter((o) => !o.hidden)
    .map((o) => {
      const long = o.long ?? '';
      return {
        names: [o.long, o.short].filter((n): n is string => Boolean(n)),
        description: o.description,
        valued: o.required || o.optional,
        choices: o.argChoices ?? [],
        files: DIR_FLAGS.has(long) ? 'dir' : FILE_FLAGS.has(long) ? 'file' : null,
      };
    });
  opts.push({ names: ['--help', '-h'], description: 'show help', valued: false, choices: [], files: null });
  const subs = cmd.commands.map((c) => ({ name: c.name(), description: c.description() }));
  out.push({ path, subs, opts });
  for (const c of cmd.commands) collect(c, path ? `${path} ${c.name()}` : c.name(), out);
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const words = (xs: string[]) => xs.join(' ');

/**
 * Shared shell logic: find the command path typed so far, skipping flags and their values. (Not
 * named `path`: in zsh that is the PATH array.)
 */
function pathScanner(index: string, first: string, last: string, onDashDash: string): string {
  return `  local cmdpath="" w i skip=0
  for ((i=${first}; i<${last}; i++)); do
    w=${index}
    if ((skip)); then skip=0; continue; fi
    if [[ $w == -- ]]; then ${onDashDash}; fi
    if [[ $w == -* ]]; then
      [[ " $(_raysub_valued "$cmdpath") " == *" $w "* ]] && skip=1
      continue
    fi
    [[ " $(_raysub_subs "$cmdpath") " == *" $w "* ]] && cmdpath="\${cmdpath:+$cmdpath }$w"
  done`;
}

function tables(specs: CmdSpec[]): string {
  const cases = (fn: (s: CmdSpec) => string) => specs.map((s) => `    ${q(s.path)}) echo ${q(fn(s))} ;;`).join('\n');
  return `_raysub_subs() {
  case "$1" in
${cases((s) => words(s.subs.map((c) => c.name)))}
  esac
}
_raysub_opts() {
  case "$1" in
${cases((s) => words(s.opts.flatMap((o) => o.names)))}
  esac
}
_raysub_valued() {
  case "$1" in
${cases((s) => words(s.opts.filter((o) => o.valued).flatMap((o) => o.names)))}
  esac
}
_raysub_value_kind() {
  case "$1|$2" in
${specs
  .flatMap((s) =>
    s.opts
      .filter((o) => o.valued)
      .flatMap((o) => o.names.map((n) => `    ${q(`${s.path}|${n}`)}) echo ${q(o.choices.length ? `choices ${words(o.choices)}` : (o.files ?? 'any'))} ;;`)),
  )
  .join('\n')}
  esac
}`;
}

export function bashScript(program: Command): string {
  const specs: CmdSpec[] = [];
  collect(program, '', specs);
  return `# raysub completion for bash. Load it with:  source <(raysub completion bash)
${tables(specs)}
_raysub() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
${pathScanner('${COMP_WORDS[i]}', '1', 'COMP_CWORD', 'COMPREPLY=($(compgen -f -- "$cur")); return')}
  local kind
  kind=$(_raysub_value_kind "$cmdpath" "$prev")
  case "$kind" in
    choices\\ *) COMPREPLY=($(compgen -W "\${kind#choices }" -- "$cur")); return ;;
    file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    any) COMPREPLY=(); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_raysub_opts "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_raysub_subs "$cmdpath")" -- "$cur"))
  fi
}
complete -o default -F _raysub raysub
`;
}

export function zshScript(program: Command): string {
  const specs: CmdSpec[] = [];
  collect(program, '', specs);
  const described = specs
    .map((s) => {
      const subs = s.subs.map((c) => q(`${c.name}:${c.description}`)).join(' ');
      const opts = s.opts.flatMap((o) => o.names.map((n) => q(`${n}:${o.description.replace(/:/g, '\\:')}`))).join(' ');
      return `    ${q(s.path)}) subs=(${subs}); opts=(${opts}) ;;`;
    })
    .join('\n');
  return `#compdef raysub
# raysub completion for zsh. Load it with:  source <(raysub completion zsh)
# (after compinit), or save it as _raysub in a directory on $fpath.
${tables(specs)}
_raysub() {
${pathScanner('${words[i]}', '2', 'CURRENT', '_files; return')}
  local prev=\${words[CURRENT-1]} kind
  kind=$(_raysub_value_kind "$cmdpath" "$prev")
  case "$kind" in
    choices\\ *) compadd -- \${=kind#choices }; return ;;
    file) _files; return ;;
    dir) _files -/; return ;;
    any) return ;;
  esac
  local -a subs opts
  case "$cmdpath" in
${described}
  esac
  if [[ \${words[CURRENT]} == -* ]]; then
    _describe -t options 'option' opts
  else
    _describe -t commands 'command' subs
  fi
}
if [[ "\${funcstack[1]}" == "_raysub" ]]; then
  _raysub "$@"
else
  compdef _raysub raysub
fi
`;
}

export function completionCommand(program: Command, shell: string, out: NodeJS.WriteStream): number {
  if (shell === 'bash') out.write(bashScript(program));
  else if (shell === 'zsh') out.write(zshScript(program));
  else throw new RaysubError('USAGE', `no completion for "${shell}"; use bash or zsh`);
  return EXIT.OK;
}

// Packaging documents generated from what the programs themselves say: man pages rendered from the
// `--help` text (so the two cannot drift apart) and bash completion for nrdctl from its command
// table (daemon/cli/commands.ts). Pure text in, text out; gen.ts runs the programs and writes files.
// Formats: man(7) roff macros; bash programmable completion (COMP_WORDS/COMP_CWORD/COMPREPLY).

export interface ManPage {
  /** Program name: the page is NAME(section). */
  name: string;
  section: number;
  /** One line for the NAME section (whatis(1), apropos(1)). */
  summary: string;
  /** Exactly what `NAME --help` prints. */
  help: string;
  /** Package version for the footer. */
  version: string;
  /** Extra sections after the ones from the help text, e.g. FILES and SEE ALSO: heading → lines. */
  extra?: ReadonlyArray<{ heading: string; items: ReadonlyArray<readonly [string, string]> }>;
}

/** Escapes text for roff: backslashes, hyphens of options, and a leading control character. */
export function roffEscape(s: string): string {
  const body = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return /^[.']/.test(body) ? `\\&${body}` : body;
}

interface Item {
  term: string;
  text: string;
}

interface Section {
  heading: string;
  lines: string[];
  items: Item[];
}

const HEADINGS: Readonly<Record<string, string>> = { usage: 'SYNOPSIS', commands: 'COMMANDS', options: 'OPTIONS' };

/**
 * Splits help text into sections: a block that starts with "Usage:", "Commands:" or "Options:"
 * becomes that section, its indented rows "  TERM  text" become items (a deeper-indented row
 * without a term continues the text above); every other block is a DESCRIPTION paragraph.
 */
export function parseHelp(help: string): Section[] {
  const sections: Section[] = [];
  const description: Section = { heading: 'DESCRIPTION', lines: [], items: [] };
  for (const block of help.replace(/\r/g, '').split(/\n\s*\n/)) {
    const rows = block.split('\n').filter((l) => l.trim() !== '');
    if (rows.length === 0) continue;
    const m = /^(Usage|Commands|Options):\s*(.*)$/.exec(rows[0]!);
    if (!m) {
      description.lines.push(rows.map((r) => r.trim()).join('\n'));
      continue;
    }
    const s: Section = { heading: HEADINGS[m[1]!.toLowerCase()]!, lines: [], items: [] };
    if (m[2]) s.items.push({ term: m[2], text: '' });
    let termCol = -1;
    for (const row of rows.slice(1)) {
      const indent = row.length - row.trimStart().length;
      const split = /^(\s+)(\S.*?)(?:\s{2,}(\S.*))?$/.exec(row);
      if (!split) continue;
      if (termCol >= 0 && indent > termCol + 1 && s.items.length > 0 && split[3] === undefined) {
        const last = s.items[s.items.length - 1]!;
        last.text = `${last.text} ${split[2]!.trim()}`.trim();
        continue;
      }
      termCol = indent;
      s.items.push({ term: split[2]!.trim(), text: (split[3] ?? '').trim() });
    }
    sections.push(s);
  }
  const synopsisAt = sections.findIndex((s) => s.heading === 'SYNOPSIS');
  sections.splice(synopsisAt + 1, 0, description);
  return sections.filter((s) => s.lines.length > 0 || s.items.length > 0);
}

/** The man page in roff. */
export function renderManPage(p: ManPage): string {
  const out: string[] = [
    `.\\" Generated from \`${p.name} --help\` by the packaging; do not edit.`,
    `.TH ${p.name.toUpperCase()} ${p.section} "" "nrd ${roffEscape(p.version)}" "System Administration"`,
    '.SH NAME',
    `${roffEscape(p.name)} \\- ${roffEscape(p.summary)}`,
  ];
  for (const s of parseHelp(p.help)) {
    out.push(`.SH ${s.heading}`);
    for (const para of s.lines) out.push('.PP', ...para.split('\n').map(roffEscape));
    for (const it of s.items) {
      if (s.heading === 'SYNOPSIS') {
        out.push('.PP', `.B ${roffEscape(it.term)}`);
        if (it.text) out.push('.br', roffEscape(it.text));
      } else {
        out.push('.TP', `.B ${roffEscape(it.term)}`, roffEscape(it.text));
      }
    }
  }
  for (const e of p.extra ?? []) {
    out.push(`.SH ${e.heading}`);
    // An item without text is a plain line (SEE ALSO's list of pages).
    for (const [term, text] of e.items) out.push(...(text ? ['.TP', `.B ${roffEscape(term)}`, roffEscape(text)] : ['.PP', roffEscape(term)]));
  }
  return out.join('\n') + '\n';
}

/** What completion needs of one nrdctl command: its words and the usage after them. */
export interface CompletionCommand {
  path: readonly string[];
  args?: string | undefined;
}

/** Options that take a value and so hide the next word from the command path. */
const GLOBAL_VALUE_OPTIONS = ['--socket', '-o', '--output'];

/** Shell-quote one word that is only letters, digits and -_. (what command words are). */
function word(w: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(w)) throw new Error(`not a plain word: ${JSON.stringify(w)}`);
  return w;
}

/**
 * A bash completion function for nrdctl: the next command word after the words typed so far, the
 * options a command's usage names, table|json after -o, files after --socket and -f. It uses only
 * COMP_WORDS/COMP_CWORD, so it works without the bash-completion helpers (_init_completion).
 */
export function renderBashCompletion(commands: readonly CompletionCommand[]): string {
  const next = new Map<string, Set<string>>();
  const opts = new Map<string, Set<string>>();
  for (const c of commands) {
    for (let i = 0; i < c.path.length; i++) {
      const key = c.path.slice(0, i).map(word).join(' ');
      if (!next.has(key)) next.set(key, new Set());
      next.get(key)!.add(word(c.path[i]!));
    }
    const key = c.path.map(word).join(' ');
    const o = opts.get(key) ?? new Set<string>();
    for (const m of (c.args ?? '').matchAll(/(?:^|[\s[|])(--?[A-Za-z][A-Za-z-]*)/g)) o.add(word(m[1]!));
    opts.set(key, o);
  }
  const cases: string[] = [];
  for (const key of new Set([...next.keys(), ...opts.keys()])) {
    const words = [...(next.get(key) ?? [])].sort();
    const o = [...(opts.get(key) ?? [])].sort();
    cases.push(`    '${key}') cands='${[...words, ...o].join(' ')}' ;;`);
  }
  return [
    '# bash completion for nrdctl; generated from its command table by the packaging, do not edit.',
    '_nrdctl() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" i w skip=0 cands=""',
    '  [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  case "$prev" in',
    '    -o|--output) COMPREPLY=($(compgen -W "table json" -- "$cur")); return 0 ;;',
    '    --socket|-f) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;',
    '  esac',
    '  # The command words typed so far: every word before the cursor that is no option or option value.',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    w="${COMP_WORDS[i]}"',
    '    if [ "$skip" = 1 ]; then skip=0; continue; fi',
    `    case "$w" in ${GLOBAL_VALUE_OPTIONS.join('|')}|-f) skip=1; continue ;; -*) continue ;; esac`,
    '    path="${path:+$path }$w"',
    '  done',
    '  case "$path" in',
    ...cases,
    '    *) cands="" ;;',
    '  esac',
    '  if [[ "$cur" == -* ]]; then cands="$cands --socket --output -o --help -h"; fi',
    '  COMPREPLY=($(compgen -W "$cands" -- "$cur"))',
    '}',
    'complete -F _nrdctl nrdctl',
    '',
  ].join('\n');
}

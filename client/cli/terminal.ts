/**
 * A small line editor for the chat CLI. In a terminal it runs in raw mode so incoming messages
 * can be printed above the line being typed (the prompt and the typed text are redrawn), and
 * secret input is not echoed. Without a terminal (a pipe) it reads plain lines.
 */

const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_U = 0x15;
const BACKSPACE = [0x7f, 0x08];
const ESC = 0x1b;
/** Longest input line, in characters. */
const MAX_LINE_CHARS = 16_384;

interface Pending {
  /** Undefined: the live prompt (it changes, e.g. when a conversation opens). */
  prompt?: string;
  secret: boolean;
  resolve: (line: string | undefined) => void;
}

export class Terminal {
  readonly #raw: boolean;
  readonly #encoder = new TextEncoder();
  #buffer: string[] = [];
  #pending: Pending[] = [];
  /** Piped lines nobody asked for yet. */
  #queued: string[] = [];
  #closed = false;
  #reading: Promise<void> | undefined;
  #skipEscape = false;
  #activity: ((text: string) => void) | undefined;

  constructor(private readonly prompt: () => string) {
    this.#raw = Deno.stdin.isTerminal();
  }

  /** Called with the input line whenever it changes (typing indicators); "" once sent or cleared. */
  onActivity(listener: (text: string) => void): void {
    this.#activity = listener;
  }

  /** Prints a line above the input line. */
  print(line: string): void {
    if (!this.#raw) {
      this.#write(`${line}\n`);
      return;
    }
    this.#write(`\r\x1b[2K${line.replaceAll("\n", "\r\n")}\r\n`);
    this.#redraw();
  }

  /** Reads the next line after `prompt` (default: the live prompt); undefined at end of input. */
  read(prompt?: string, options: { secret?: boolean } = {}): Promise<string | undefined> {
    if (this.#queued.length > 0) return Promise.resolve(this.#queued.shift());
    if (this.#closed) return Promise.resolve(undefined);
    this.#reading ??= this.#raw ? this.#readRaw() : this.#readLines();
    return new Promise((resolve) => {
      this.#pending.push({ prompt, secret: options.secret ?? false, resolve });
      if (this.#pending.length === 1) this.#redraw();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#raw) {
      this.#write("\r\n");
      try {
        Deno.stdin.setRaw(false);
      } catch {
        // stdin already closed
      }
    }
    for (const pending of this.#pending.splice(0)) pending.resolve(undefined);
  }

  #write(text: string): void {
    Deno.stdout.writeSync(this.#encoder.encode(text));
  }

  #redraw(): void {
    if (!this.#raw || this.#closed) return;
    const current = this.#pending[0];
    const prompt = current?.prompt ?? this.prompt();
    const shown = current?.secret ? "" : this.#buffer.join("");
    this.#write(`\r\x1b[2K${prompt}${shown}`);
  }

  #submit(): void {
    const line = this.#buffer.join("");
    const wasActive = this.#buffer.length > 0;
    this.#buffer = [];
    const current = this.#pending.shift();
    if (this.#raw) this.#write("\r\n");
    if (wasActive && !current?.secret) this.#activity?.("");
    current?.resolve(line);
    if (this.#pending.length > 0) this.#redraw();
  }

  async #readRaw(): Promise<void> {
    Deno.stdin.setRaw(true);
    const decoder = new TextDecoder();
    try {
      for await (const chunk of Deno.stdin.readable) {
        for (const char of decoder.decode(chunk, { stream: true })) {
          if (this.#closed) return;
          this.#key(char);
        }
      }
    } finally {
      this.close();
    }
  }

  #key(char: string): void {
    const code = char.codePointAt(0)!;
    const secret = this.#pending[0]?.secret ?? false;
    if (this.#skipEscape) {
      // Skip the rest of an escape sequence (arrow keys and friends): ESC [ ... final byte.
      if (char !== "[" && code >= 0x40 && code <= 0x7e) this.#skipEscape = false;
      return;
    }
    if (code === ESC) {
      this.#skipEscape = true;
    } else if (char === "\r" || char === "\n") {
      this.#submit();
    } else if (code === CTRL_C) {
      if (this.#buffer.length > 0) {
        this.#buffer = [];
        if (!secret) this.#activity?.("");
        this.#redraw();
      } else {
        this.close();
      }
    } else if (code === CTRL_D) {
      if (this.#buffer.length === 0) this.close();
    } else if (code === CTRL_U) {
      this.#buffer = [];
      if (!secret) this.#activity?.("");
      this.#redraw();
    } else if (BACKSPACE.includes(code)) {
      if (this.#buffer.length > 0) {
        this.#buffer.pop();
        if (!secret) this.#activity?.(this.#buffer.join(""));
        this.#redraw();
      }
    } else if (code >= 0x20 && this.#buffer.length < MAX_LINE_CHARS) {
      this.#buffer.push(char);
      if (secret) return;
      this.#activity?.(this.#buffer.join(""));
      this.#write(char);
    }
  }

  async #readLines(): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    try {
      for await (const chunk of Deno.stdin.readable) {
        rest += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = rest.indexOf("\n")) !== -1) {
          const line = rest.slice(0, newline).replace(/\r$/, "");
          rest = rest.slice(newline + 1);
          this.#deliver(line);
        }
        if (rest.length > MAX_LINE_CHARS) rest = rest.slice(0, MAX_LINE_CHARS);
      }
      if (rest) this.#deliver(rest);
    } finally {
      this.close();
    }
  }

  #deliver(line: string): void {
    const pending = this.#pending.shift();
    if (pending) pending.resolve(line);
    else if (this.#queued.length < 10_000) this.#queued.push(line);
  }
}

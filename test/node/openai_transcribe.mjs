// Drives the official `openai` npm package against the gateway; run by test/integration/test_openai_sdk.py.
//
//   node openai_transcribe.mjs all BASE_URL AUDIO_PATH EMPTY_PATH   stream, every format, models, errors
//   node openai_transcribe.mjs stream BASE_URL AUDIO_PATH           one stream; its events, or its error
//   node openai_transcribe.mjs create BASE_URL AUDIO_PATH           one json request; its body, or error
//
// Prints one JSON object on stdout: what the SDK returned (events, bodies, model ids) and errors as
// {class, status, message, code, param, type}, so the Python test can check them. Exits non-zero
// (the error on stderr) only when the SDK throws where no error was expected.
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';

const [mode, baseURL, audioPath, emptyPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
const file = async (path) => toFile(fs.readFileSync(path), path.split('/').pop());

function describe(error) {
  return {
    class: error?.constructor?.name,
    status: error?.status ?? null,
    message: error?.error?.message ?? error?.message,
    code: error?.code ?? null,
    param: error?.param ?? null,
    type: error?.type ?? null,
  };
}

async function caught(promise) {
  try {
    await promise;
    return { class: null };
  } catch (error) {
    return describe(error);
  }
}

async function streamEvents(events) {
  const stream = await client.audio.transcriptions.create({
    file: await file(audioPath),
    model: 'whisper-1',
    stream: true,
  });
  for await (const event of stream) {
    events.push(event);
  }
}

if (mode === 'stream') {
  const events = [];
  const error = await caught(streamEvents(events));
  process.stdout.write(JSON.stringify({ events, error }));
  process.exit(0);
}
if (mode === 'create') {
  let body = null;
  const error = await caught(
    (async () => {
      body = await client.audio.transcriptions.create({
        file: await file(audioPath),
        model: 'whisper-1',
      });
    })(),
  );
  process.stdout.write(JSON.stringify({ body, error }));
  process.exit(0);
}

const result = { stream: [], formats: {}, errors: {} };
await streamEvents(result.stream);

for (const format of ['json', 'text', 'srt', 'vtt', 'verbose_json', 'diarized_json']) {
  result.formats[format] = await client.audio.transcriptions.create({
    file: await file(audioPath),
    model: 'whisper-1',
    response_format: format,
    ...(format === 'verbose_json' ? { timestamp_granularities: ['segment'] } : {}),
  });
}

const models = await client.models.list();
result.models = models.data.map((model) => model.id);

result.errors.empty = await caught(
  client.audio.transcriptions.create({ file: await file(emptyPath), model: 'whisper-1' }),
);
result.errors.word = await caught(
  client.audio.transcriptions.create({
    file: await file(audioPath),
    model: 'whisper-1',
    response_format: 'verbose_json',
    timestamp_granularities: ['word'],
  }),
);
result.errors.stream_srt = await caught(
  client.audio.transcriptions.create({
    file: await file(audioPath),
    model: 'whisper-1',
    response_format: 'srt',
    stream: true,
  }),
);
result.errors.unknown_route = await caught(client.files.list());

process.stdout.write(JSON.stringify(result));

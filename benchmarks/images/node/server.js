'use strict';
// A small express service: JSON routes, a router, and a ready line once the
// port accepts connections.

const express = require('express');
const os = require('os');
const crypto = require('crypto');

const port = Number(process.env.PORT || 3000);
const app = express();
app.disable('x-powered-by');
app.use(express.json());

const items = ['anvil', 'bellows', 'chisel', 'drill', 'file'].map((name, id) => ({
  id,
  name,
  sku: crypto.createHash('sha256').update(name).digest('hex').slice(0, 12),
}));

const api = express.Router();
api.get('/items', (req, res) => res.json(items.slice(0, Number(req.query.limit || 10))));
api.get('/items/:id', (req, res) => {
  const item = items[Number(req.params.id)];
  if (!item) return res.status(404).json({ error: 'not found' });
  res.json(item);
});
app.use('/api', api);
app.get('/healthz', (req, res) => res.type('text').send('ok\n'));
app.get('/', (req, res) => res.json({ service: 'node', host: os.hostname(), time: new Date().toISOString() }));

app.listen(port, '0.0.0.0', () => {
  console.log(`ready: listening on 0.0.0.0:${port}`);
});

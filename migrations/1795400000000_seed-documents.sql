-- Hand-written: sample rows for the example. They are written after the embedding column exists,
-- so the queue trigger queues each of them for `pgml-kit worker`.
-- Up Migration
INSERT INTO documents (title, body, department) VALUES
  ('Affordable housing programme', 'Rent support and new homes for families with low incomes.', 'housing'),
  ('Housing permits', 'How to apply for a building permit and how long it takes.', 'housing'),
  ('Park opening hours', 'City parks open at dawn and close at dusk, every day of the year.', 'parks'),
  ('Library cards', 'Any resident can get a library card at any public library.', 'libraries'),
  ('Bus and train fares', 'Public transit fares, passes and discounts for students.', 'transit'),
  ('Recycling collection', 'Which bins to use for paper, glass and plastic, and when they are collected.', 'waste'),
  ('Property tax', 'How the property tax is computed and when it is due.', 'finance'),
  ('School enrolment', 'Enrolling a child in a public school, and the documents you need.', 'schools');

-- Down Migration
DELETE FROM documents WHERE title IN ('Affordable housing programme', 'Housing permits', 'Park opening hours', 'Library cards',
  'Bus and train fares', 'Recycling collection', 'Property tax', 'School enrolment');

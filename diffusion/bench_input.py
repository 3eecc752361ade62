"""A small library catalogue used as sample input for `unmask bench` and `unmask preview`.

The module is deliberately ordinary: a few dataclasses, an Enum, some helper
functions and a catalogue class. It only uses the standard library and can be
run directly to print a short report.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum


class Genre(Enum):
    FICTION = "fiction"
    HISTORY = "history"
    SCIENCE = "science"
    POETRY = "poetry"
    CHILDREN = "children"


@dataclass
class Book:
    isbn: str
    title: str
    author: str
    year: int
    genre: Genre
    copies: int = 1
    ratings: list[int] = field(default_factory=list)


@dataclass
class Loan:
    isbn: str
    member: str
    borrowed: date
    returned: date | None = None


def average_rating(book: Book) -> float:
    """Return the mean rating of a book, or 0.0 if it has no ratings."""
    if not book.ratings:
        return 0.0
    total = sum(book.ratings)
    return round(total / len(book.ratings), 2)


def normalize_isbn(raw: str) -> str:
    """Strip spaces and hyphens from an ISBN and upper-case a trailing X."""
    cleaned = raw.replace("-", "").replace(" ", "").strip()
    return cleaned.upper()


def is_valid_isbn13(isbn: str) -> bool:
    """Check the ISBN-13 checksum of an already normalized string."""
    if len(isbn) != 13 or not isbn.isdigit():
        return False
    total = 0
    for index, char in enumerate(isbn[:12]):
        weight = 1 if index % 2 == 0 else 3
        total += int(char) * weight
    check = (10 - total % 10) % 10
    return check == int(isbn[12])


def parse_genre(text: str) -> Genre:
    """Turn a free-form genre label into a Genre, defaulting to FICTION."""
    try:
        return Genre(text.strip().lower())
    except ValueError:
        return Genre.FICTION


def books_by_author(books: Iterable[Book], author: str) -> list[Book]:
    """Return the books written by an author, matched case-insensitively."""
    wanted = author.casefold()
    return [book for book in books if book.author.casefold() == wanted]


def count_by_genre(books: Iterable[Book]) -> dict[Genre, int]:
    """Count how many titles the catalogue holds in each genre."""
    counts: Counter[Genre] = Counter(book.genre for book in books)
    return {genre: counts.get(genre, 0) for genre in Genre}


def top_rated(books: Iterable[Book], limit: int = 3) -> list[Book]:
    """Return the highest rated books that have at least one rating."""
    rated = [book for book in books if book.ratings]
    ranked = [(average_rating(book), book.title, book) for book in rated]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [book for _, _, book in ranked[:limit]]


def decade_of(year: int) -> str:
    """Return a label such as '1990s' for a publication year."""
    start = year - year % 10
    return f"{start}s"


def group_by_decade(books: Iterable[Book]) -> dict[str, list[str]]:
    """Group book titles by the decade in which they were published."""
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for book in books:
        groups[decade_of(book.year)].append(book.title)
    return {decade: sorted(titles) for decade, titles in sorted(groups.items())}


def authors_with_most_titles(books: Iterable[Book], minimum: int = 2) -> list[str]:
    """Return authors who have at least `minimum` titles, most prolific first."""
    tally: Counter[str] = Counter(book.author for book in books)
    prolific = [(author, count) for author, count in tally.items() if count >= minimum]
    prolific.sort(key=lambda pair: (-pair[1], pair[0]))
    return [author for author, _ in prolific]


def overdue_loans(loans: Iterable[Loan], today: date, days: int = 21) -> list[Loan]:
    """Return the open loans that have been out for longer than `days`."""
    limit = timedelta(days=days)
    late = []
    for loan in loans:
        if loan.returned is None and today - loan.borrowed > limit:
            late.append(loan)
    return late


def late_fee(loan: Loan, today: date, per_day: float = 0.25, days: int = 21) -> float:
    """Compute the fee owed for a loan, capped at ten currency units."""
    end = loan.returned or today
    extra = (end - loan.borrowed).days - days
    if extra <= 0:
        return 0.0
    return min(round(extra * per_day, 2), 10.0)


def member_history(loans: Iterable[Loan], member: str) -> list[str]:
    """Return the ISBNs a member has borrowed, oldest loan first."""
    own = [loan for loan in loans if loan.member == member]
    own.sort(key=lambda loan: loan.borrowed)
    return [loan.isbn for loan in own]


def busiest_members(loans: Iterable[Loan], limit: int = 3) -> list[tuple[str, int]]:
    """Return the members with the most loans together with their counts."""
    counts: Counter[str] = Counter(loan.member for loan in loans)
    pairs = list(counts.items())
    pairs = [(name, total) for name, total in pairs if total > 0]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:limit]


def rating_spread(book: Book) -> float | None:
    """Return the standard deviation of a book's ratings, if it has two or more."""
    if len(book.ratings) < 2:
        return None
    return round(statistics.stdev(book.ratings), 2)


def book_from_dict(data: dict) -> Book:
    """Build a Book from a plain dictionary, such as one loaded from JSON."""
    ratings = [int(value) for value in data.get("ratings", []) if 1 <= int(value) <= 5]
    return Book(
        isbn=normalize_isbn(str(data["isbn"])),
        title=str(data["title"]).strip(),
        author=str(data["author"]).strip(),
        year=int(data["year"]),
        genre=parse_genre(str(data.get("genre", "fiction"))),
        copies=int(data.get("copies", 1)),
        ratings=ratings,
    )


class Catalogue:
    """An in-memory collection of books and the loans made against them."""

    def __init__(self, books: Iterable[Book] = ()) -> None:
        self._books: dict[str, Book] = {}
        self._loans: list[Loan] = []
        for book in books:
            self.add(book)

    def __len__(self) -> int:
        return len(self._books)

    def __iter__(self) -> Iterator[Book]:
        return iter(self._books.values())

    def add(self, book: Book) -> None:
        """Add a book, merging copies if the ISBN is already present."""
        existing = self._books.get(book.isbn)
        if existing is None:
            self._books[book.isbn] = book
        else:
            existing.copies += book.copies
            existing.ratings.extend(book.ratings)

    def find(self, isbn: str) -> Book | None:
        """Look up a book by ISBN, accepting hyphenated input."""
        return self._books.get(normalize_isbn(isbn))

    def search(self, text: str) -> list[Book]:
        """Return books whose title or author contains `text`."""
        needle = text.casefold()
        hits = []
        for book in self._books.values():
            if needle in book.title.casefold() or needle in book.author.casefold():
                hits.append(book)
        return sorted(hits, key=lambda book: book.title)

    def available(self, isbn: str) -> int:
        """Return how many copies of a book are currently on the shelf."""
        book = self.find(isbn)
        if book is None:
            return 0
        out = sum(1 for loan in self._loans if loan.isbn == book.isbn and not loan.returned)
        return book.copies - out

    def lend(self, isbn: str, member: str, when: date) -> Loan:
        """Record a loan, raising LookupError if no copy is available."""
        book = self.find(isbn)
        if book is None:
            raise LookupError(f"unknown ISBN {isbn}")
        if self.available(book.isbn) <= 0:
            raise LookupError(f"no copies of {book.title!r} left")
        loan = Loan(isbn=book.isbn, member=member, borrowed=when)
        self._loans.append(loan)
        return loan

    def give_back(self, isbn: str, member: str, when: date) -> bool:
        """Mark the oldest open loan of a book by a member as returned."""
        key = normalize_isbn(isbn)
        for loan in self._loans:
            if loan.isbn == key and loan.member == member and loan.returned is None:
                loan.returned = when
                return True
        return False

    def titles_by_genre(self, genre: Genre) -> list[str]:
        """Return the sorted titles belonging to one genre."""
        chosen = [book for book in self._books.values() if book.genre is genre]
        titles = {book.title for book in chosen}
        return sorted(titles)

    def report(self, today: date) -> list[str]:
        """Return a short multi-line summary of the catalogue's state."""
        lines = [f"{len(self)} titles, {sum(b.copies for b in self)} copies"]
        for genre, count in count_by_genre(self).items():
            if count:
                lines.append(f"  {genre.value:<9} {count}")
        late = overdue_loans(self._loans, today)
        fees = sum(late_fee(loan, today) for loan in late)
        lines.append(f"{len(late)} overdue loans, {fees:.2f} in fees")
        return lines

    def to_json(self) -> str:
        """Serialize the books (not the loans) to a JSON string."""
        rows = []
        for book in self._books.values():
            row = {
                "isbn": book.isbn,
                "title": book.title,
                "author": book.author,
                "year": book.year,
                "genre": book.genre.value,
                "copies": book.copies,
                "ratings": list(book.ratings),
            }
            rows.append(row)
        return json.dumps(rows, indent=2)


def load_catalogue(text: str) -> Catalogue:
    """Parse a JSON list of book records, skipping entries that are malformed."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError:
        return Catalogue()
    books = []
    for record in records:
        try:
            books.append(book_from_dict(record))
        except (KeyError, TypeError, ValueError):
            continue
    return Catalogue(books)


# The body below is left for the model: the README's first command fills it in.
def newest(books: Iterable[Book]) -> Book | None:
    """Return the most recently published book, or None when there is none."""
    


SAMPLE = [
    {
        "isbn": "978-0-14-143951-8",
        "title": "Middlemarch",
        "author": "George Eliot",
        "year": 1871,
        "genre": "fiction",
        "copies": 2,
        "ratings": [5, 4, 5],
    },
    {
        "isbn": "978-0-14-043951-0",
        "title": "Silas Marner",
        "author": "George Eliot",
        "year": 1861,
        "genre": "fiction",
        "ratings": [4, 3],
    },
    {
        "isbn": "978-0-553-38016-3",
        "title": "A Brief History of Time",
        "author": "Stephen Hawking",
        "year": 1988,
        "genre": "science",
        "ratings": [4],
    },
    {
        "isbn": "978-0-375-72520-0",
        "title": "The Guns of August",
        "author": "Barbara Tuchman",
        "year": 1962,
        "genre": "History",
        "copies": 1,
    },
    {
        "isbn": "978-0-06-440055-8",
        "title": "Where the Sidewalk Ends",
        "author": "Shel Silverstein",
        "year": 1974,
        "genre": "poetry",
        "ratings": [5, 5],
    },
    {"title": "Missing ISBN", "author": "Nobody", "year": 2000},
]


if __name__ == "__main__":
    catalogue = load_catalogue(json.dumps(SAMPLE))
    start = date(2024, 3, 1)
    catalogue.lend("978-0-14-143951-8", "ada", start)
    catalogue.lend("978-0-553-38016-3", "grace", start + timedelta(days=3))
    catalogue.give_back("978-0-553-38016-3", "grace", start + timedelta(days=10))
    for line in catalogue.report(start + timedelta(days=30)):
        print(line)
    for book in top_rated(catalogue):
        print(f"{book.title}: {average_rating(book)}")
    print("by decade:", group_by_decade(catalogue))
